/*
 * ai-chat-fcgi user add EMAIL [--admin] | user role EMAIL admin|user | user adopt OLD_USER_ID EMAIL:
 * accounts made on the host, with the server's settings file.  The first admin is made here, never
 * over HTTP.  add reads the password from the terminal without echo (twice), or a line of stdin.
 */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../common/auth.h"
#include "../common/repo_users.h"
#include "../common/util.h"
#include "cli_user.h"

#define PROG "ai-chat-fcgi user"

static int
usage(void)
{
	fprintf(stderr, "usage: ai-chat-fcgi user add EMAIL [--admin]\n"
	    "       ai-chat-fcgi user role EMAIL admin|user\n"
	    "       ai-chat-fcgi user adopt OLD_USER_ID EMAIL\n"
	    "add asks for the password on the terminal (or reads one line of stdin); adopt gives the chats\n"
	    "of a user_id from before accounts (AUTH=none) to the account of EMAIL.\n");
	return 2;
}

/* One line into buf (its newline dropped); -1 at end of input or when too long. */
static int
read_line(FILE *f, char *buf, size_t size, size_t *len)
{
	if (fgets(buf, (int)size, f) == NULL)
		return -1;
	*len = strlen(buf);
	if (*len > 0 && buf[*len - 1] == '\n')
		buf[--*len] = '\0';
	else if (!feof(f))
		return -1;
	if (*len > 0 && buf[*len - 1] == '\r')
		buf[--*len] = '\0';
	return 0;
}

/* A line of the terminal with echo off. */
static int
ask(const char *prompt, char *buf, size_t size, size_t *len)
{
	struct termios old, quiet;
	int rc;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
		return -1;
	rc = read_line(stdin, buf, size, len);
	(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

static int
get_password(char *buf, size_t size, size_t *len)
{
	char again[AC_PASSWORD_MAX * 4 + 2];
	size_t again_len = 0, chars = 0;

	if (isatty(STDIN_FILENO)) {
		if (ask("Password: ", buf, size, len) != 0 || ask("Password again: ", again, sizeof(again), &again_len) != 0) {
			fprintf(stderr, "%s: no password read\n", PROG);
			return -1;
		}
		if (again_len != *len || memcmp(again, buf, *len) != 0) {
			fprintf(stderr, "%s: the passwords differ\n", PROG);
			return -1;
		}
	} else if (read_line(stdin, buf, size, len) != 0) {
		fprintf(stderr, "%s: no password on stdin (one line)\n", PROG);
		return -1;
	}
	if (!ac_utf8_count(buf, *len, &chars) || chars < AC_PASSWORD_MIN || chars > AC_PASSWORD_MAX) {
		fprintf(stderr, "%s: a password has %d to %d characters\n", PROG, AC_PASSWORD_MIN, AC_PASSWORD_MAX);
		return -1;
	}
	return 0;
}

struct found {
	char id[256];
	size_t id_len;
	bool admin;
};

static enum ac_err
found_user(void *arg, const struct ac_user *u)
{
	struct found *f = arg;

	if (u->id.len >= sizeof(f->id))
		return AC_ETOOBIG;
	memcpy(f->id, u->id.ptr, u->id.len);
	f->id[u->id.len] = '\0';
	f->id_len = u->id.len;
	f->admin = u->admin;
	return AC_OK;
}

static int
fail(struct ac_repo *r, const char *what, enum ac_err err)
{
	fprintf(stderr, "%s: %s: %s\n", PROG, what, r != NULL ? ac_repo_errmsg(r) : ac_strerror(err));
	return 1;
}

int
ac_cli_user(const struct ac_config *cfg, int argc, char **argv)
{
	struct ac_db_conf db;
	struct ac_repo *r = NULL;
	struct found f = { "", 0, false };
	char email[AC_EMAIL_MAX + 1], msg[512], password[AC_PASSWORD_MAX * 4 + 2], hash[AC_AUTH_HASH_MAX];
	const char *email_arg;
	size_t email_len = 0, password_len = 0;
	enum ac_err err;
	int status = 1;
	bool admin = false;

	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "add") == 0) {
		if (argc == 4 && strcmp(argv[3], "--admin") != 0)
			return usage();
		admin = argc == 4;
		email_arg = argv[2];
	} else if (argc == 4 && strcmp(argv[1], "role") == 0) {
		if (strcmp(argv[3], "admin") != 0 && strcmp(argv[3], "user") != 0)
			return usage();
		admin = strcmp(argv[3], "admin") == 0;
		email_arg = argv[2];
	} else if (argc == 4 && strcmp(argv[1], "adopt") == 0) {
		email_arg = argv[3];
	} else {
		return usage();
	}
	/* A new account needs an email; role and adopt name any account (REMOTE_USER's are names). */
	if (strcmp(argv[1], "add") == 0 ? !ac_auth_email((struct ac_str){ email_arg, strlen(email_arg) }, email,
	    &email_len) : !ac_auth_name((struct ac_str){ email_arg, strlen(email_arg) }, email, &email_len)) {
		fprintf(stderr, "%s: '%s' is not a valid email address\n", PROG, email_arg);
		return 2;
	}
	ac_config_db(cfg, &db);
	if (ac_repo_migrate(&db, msg, sizeof(msg)) != AC_OK) {
		fprintf(stderr, "%s: database %s: %s\n", PROG, cfg->db_display, msg);
		return 1;
	}
	if ((err = ac_repo_open(&db, &r)) != AC_OK) {
		ac_repo_close(r);
		return fail(NULL, cfg->db_display, err);
	}
	if (strcmp(argv[1], "add") == 0) {
		if (get_password(password, sizeof(password), &password_len) != 0)
			goto out;
		if (ac_auth_init(cfg, msg, sizeof(msg)) != AC_OK) {
			fprintf(stderr, "%s: %s\n", PROG, msg);
			goto out;
		}
		if (ac_auth_hash(password, password_len, hash) != AC_OK) {
			fprintf(stderr, "%s: the password could not be hashed (out of memory?)\n", PROG);
			goto out;
		}
		err = ac_repo_user_create(r, (struct ac_str){ email, email_len }, (struct ac_str){ hash, strlen(hash) },
		    admin, found_user, &f);
		if (err == AC_ECONFLICT) {
			fprintf(stderr, "%s: %s is already registered (user role changes its role)\n", PROG, email);
			goto out;
		}
		if (err != AC_OK) {
			status = fail(r, "cannot add", err);
			goto out;
		}
		printf("added %s (id %s, role %s)\n", email, f.id, admin ? "admin" : "user");
		status = 0;
		goto out;
	}
	err = ac_repo_user_by_email(r, (struct ac_str){ email, email_len }, found_user, &f);
	if (err == AC_ENOTFOUND) {
		fprintf(stderr, "%s: no account %s (user add makes one)\n", PROG, email);
		goto out;
	}
	if (err != AC_OK) {
		status = fail(r, "cannot read", err);
		goto out;
	}
	if (strcmp(argv[1], "role") == 0) {
		err = ac_repo_user_set_role(r, (struct ac_str){ f.id, f.id_len }, admin, NULL, NULL);
		if (err != AC_OK) {
			status = fail(r, "cannot change the role", err);
			goto out;
		}
		printf("%s is now %s\n", email, admin ? "an admin" : "a user");
	} else {
		int64_t chats = 0;

		err = ac_repo_user_adopt(r, (struct ac_str){ argv[2], strlen(argv[2]) }, (struct ac_str){ f.id, f.id_len },
		    &chats);
		if (err != AC_OK) {
			status = fail(r, "cannot adopt", err);
			goto out;
		}
		printf("gave %lld chat%s of user_id %s to %s (id %s)\n", (long long)chats, chats == 1 ? "" : "s",
		    argv[2], email, f.id);
	}
	status = 0;
out:
	memset(password, 0, sizeof(password));
	ac_repo_close(r);
	return status;
}
