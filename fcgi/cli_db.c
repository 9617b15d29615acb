/*
 * ai-chat-fcgi db copy FROM_URL TO_URL [--force]: copies every row of one database into another,
 * either engine to either engine, ids and timestamps kept.  Both are first brought to this program's
 * schema.  The source is read in one snapshot, the target written in one transaction: a copy that
 * fails leaves the target as it was.  A target that holds rows is refused unless --force, which
 * empties it first (in that same transaction).
 *
 * The tables are listed below in the order their foreign keys need; a migration that adds a table
 * adds it here (tests/e2e/test_pg_copy.py compares every table of both engines' schemas with it).
 */
#include <stdio.h>
#include <string.h>

#include "../common/db.h"
#include "cli_db.h"

#define MAX_COLUMNS 16
#define SQL_MAX 512

struct table {
	const char *name;
	const char *columns;	/* in order; */
	const char *types;	/* one letter per column: s string, i integer (either may be NULL) */
	const char *pg_after;	/* PostgreSQL, after the copy: identity sequences moved past the ids */
};

static const struct table tables[] = {
	{ "chats", "id, user_id, title, created_at, updated_at, message_count, system_prompt, model, pinned, archived",
	    "sssiiissii", NULL },
	/* in id order a message's parent comes before it */
	{ "messages", "id, chat_id, parent_id, role, content, created_at, model, prompt_tokens, completion_tokens, "
	    "incomplete, active, state, locked_until", "isissisiiiiii", "SELECT setval(pg_get_serial_sequence('messages', 'id'), "
	    "(SELECT coalesce(max(id), 0) + 1 FROM messages), false)" },
	{ "idempotency_keys", "user_id, key, chat_id, user_message_id, reply_message_id, locked_until, created_at",
	    "sssiiii", NULL },
	{ "users", "id, email, password_hash, role, token_version, subject, created_at", "ssssisi", NULL },
	{ "login_attempts", "kind, key, at", "ssi", NULL },
	{ "user_limits", "user_id, rate_tat, token_day, tokens", "siii", NULL },
	{ "generation_slots", "id, user_id, until", "isi", "SELECT setval(pg_get_serial_sequence('generation_slots', "
	    "'id'), (SELECT coalesce(max(id), 0) + 1 FROM generation_slots), false)" },
	{ "ops_leases", "name, holder, until", "ssi", NULL },
	{ "api_keys", "id, user_id, name, prefix, key_hash, created_at, last_used_at", "sssssii", NULL },
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* The statements' texts, made once (the engines keep prepared statements by their text's address). */
static char select_sql[NTABLES][SQL_MAX], insert_sql[NTABLES][SQL_MAX], count_sql[NTABLES][SQL_MAX],
    delete_sql[NTABLES][SQL_MAX];

/* Statement numbers: each kind has room for MAX_TABLES tables. */
#define MAX_TABLES 16
enum { S_SELECT = 0, S_INSERT = MAX_TABLES, S_COUNT = 2 * MAX_TABLES, S_DELETE = 3 * MAX_TABLES,
	S_AFTER = 4 * MAX_TABLES };
_Static_assert(NTABLES <= MAX_TABLES, "more tables than statement numbers: raise MAX_TABLES");
_Static_assert(S_AFTER + MAX_TABLES <= AC_DB_MAX_STMTS, "MAX_TABLES too large");

static int
make_sql(void)
{
	for (size_t t = 0; t < NTABLES; t++) {
		char params[MAX_COLUMNS * 6] = "";
		size_t n = strlen(tables[t].types), used = 0, columns = 1;

		for (const char *c = tables[t].columns; *c != '\0'; c++)
			columns += *c == ',';
		if (columns != n || n > MAX_COLUMNS)
			return -1;

		for (size_t i = 0; i < n; i++)
			used += (size_t)snprintf(params + used, sizeof(params) - used, "%s$%zu", i ? ", " : "", i + 1);
		snprintf(select_sql[t], SQL_MAX, "SELECT %s FROM %s ORDER BY 1, 2", tables[t].columns, tables[t].name);
		snprintf(insert_sql[t], SQL_MAX, "INSERT INTO %s (%s) VALUES (%s)", tables[t].name, tables[t].columns,
		    params);
		snprintf(count_sql[t], SQL_MAX, "SELECT count(*) FROM %s", tables[t].name);
		snprintf(delete_sql[t], SQL_MAX, "DELETE FROM %s", tables[t].name);
	}
	return 0;
}

struct end {
	const char *url;	/* as shown: any password as *** */
	struct ac_config cfg;
	struct ac_db *db;
};

static int
say(const struct end *e, const char *what, enum ac_err err)
{
	fprintf(stderr, "ai-chat-fcgi db copy: %s %s: %s\n", what, e->url,
	    e->db != NULL ? ac_db_errmsg(e->db) : ac_strerror(err));
	return 1;
}

static enum ac_err
run(struct ac_db *db, int id, const char *text, int64_t *count)
{
	struct ac_sql sql = { text, NULL };
	struct ac_stmt *s;
	enum ac_err err;
	bool row = false;

	if ((err = ac_db_stmt(db, id, &sql, &s)) != AC_OK)
		return err;
	err = ac_db_step(s, &row);
	if (err == AC_OK && row && count != NULL)
		*count = ac_db_col_int(s, 0);
	ac_db_done(s);
	return err;
}

/* Copies one table's rows, in the source's snapshot, into the target's transaction. */
static enum ac_err
copy_table(struct end *from, struct end *to, size_t t, int64_t *rows, struct end **failed)
{
	struct ac_sql sel = { select_sql[t], NULL }, ins = { insert_sql[t], NULL };
	struct ac_stmt *src, *dst;
	const char *types = tables[t].types;
	enum ac_err err;
	bool row;

	*rows = 0;
	*failed = from;
	if ((err = ac_db_stmt(from->db, S_SELECT + (int)t, &sel, &src)) != AC_OK)
		return err;
	*failed = to;
	if ((err = ac_db_stmt(to->db, S_INSERT + (int)t, &ins, &dst)) != AC_OK) {
		ac_db_done(src);
		return err;
	}
	for (;;) {
		*failed = from;
		if ((err = ac_db_step(src, &row)) != AC_OK || !row)
			break;
		*failed = to;
		for (int i = 0; types[i] != '\0'; i++) {
			if (ac_db_col_null(src, i))
				ac_db_bind_null(dst, i + 1);
			else if (types[i] == 'i')
				ac_db_bind_int(dst, i + 1, ac_db_col_int(src, i));
			else
				ac_db_bind_str(dst, i + 1, ac_db_col_str(src, i));
		}
		err = ac_db_step(dst, &row);
		ac_db_done(dst);
		if (err != AC_OK) {
			ac_db_done(src);
			return err == AC_ECONFLICT || err == AC_ENOTFOUND ? AC_EDB : err;
		}
		(*rows)++;
	}
	ac_db_done(src);
	return err;
}

static int
copy(const struct ac_config *base, const char *from_url, const char *to_url, bool force)
{
	struct end from = { .cfg = *base }, to = { .cfg = *base };
	struct end *ends[2] = { &from, &to };
	const char *urls[2] = { from_url, to_url };
	struct ac_db_conf conf;
	int64_t rows[NTABLES], present = 0;
	char msg[512];
	enum ac_err err;
	int status = 1;

	for (int i = 0; i < 2; i++) {
		if (ac_config_database_url(&ends[i]->cfg, urls[i], msg, sizeof(msg)) != AC_OK) {
			fprintf(stderr, "ai-chat-fcgi db copy: %s\n", msg);
			return 2;
		}
		ends[i]->url = ends[i]->cfg.db_display;
	}
	if (strcmp(from.cfg.db_path, to.cfg.db_path) == 0 && from.cfg.db_kind == to.cfg.db_kind) {
		fprintf(stderr, "ai-chat-fcgi db copy: %s is both the source and the target\n", from.url);
		return 2;
	}
	if (make_sql() != 0) {
		fprintf(stderr, "ai-chat-fcgi db copy: a table's columns and types disagree (fcgi/cli_db.c)\n");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		ac_config_db(&ends[i]->cfg, &conf);
		if (ac_db_migrate(&conf, msg, sizeof(msg)) != AC_OK) {
			fprintf(stderr, "ai-chat-fcgi db copy: %s: %s\n", ends[i]->url, msg);
			return 1;
		}
		if ((err = ac_db_open(&conf, &ends[i]->db)) != AC_OK) {
			status = say(ends[i], "cannot open", err);
			goto out;
		}
	}
	if ((err = ac_db_begin(from.db, AC_TXN_READ)) != AC_OK) {
		status = say(&from, "cannot read", err);
		goto out;
	}
	if ((err = ac_db_begin(to.db, AC_TXN_WRITE)) != AC_OK) {
		status = say(&to, "cannot write", err);
		goto out;
	}
	for (size_t t = 0; t < NTABLES; t++) {
		int64_t n = 0;

		if ((err = run(to.db, S_COUNT + (int)t, count_sql[t], &n)) != AC_OK) {
			status = say(&to, "cannot read", err);
			goto out;
		}
		present += n;
	}
	if (present > 0 && !force) {
		fprintf(stderr, "ai-chat-fcgi db copy: %s is not empty (%lld rows): refused; --force empties it first\n",
		    to.url, (long long)present);
		status = 3;
		goto out;
	}
	for (size_t t = NTABLES; present > 0 && t-- > 0;) {
		if ((err = run(to.db, S_DELETE + (int)t, delete_sql[t], NULL)) != AC_OK) {
			status = say(&to, "cannot empty", err);
			goto out;
		}
	}
	for (size_t t = 0; t < NTABLES; t++) {
		struct end *failed;

		if ((err = copy_table(&from, &to, t, &rows[t], &failed)) != AC_OK) {
			status = say(failed, tables[t].name, err);
			goto out;
		}
		if (tables[t].pg_after != NULL && ac_db_kind(to.db) == AC_DB_PG &&
		    (err = run(to.db, S_AFTER + (int)t, tables[t].pg_after, NULL)) != AC_OK) {
			status = say(&to, "cannot write", err);
			goto out;
		}
	}
	if ((err = ac_db_commit(to.db)) != AC_OK) {
		status = say(&to, "cannot commit", err);
		goto out;
	}
	printf("copied %s to %s:", from.url, to.url);
	for (size_t t = 0; t < NTABLES; t++)
		printf(" %s %lld%s", tables[t].name, (long long)rows[t], t + 1 < NTABLES ? "," : "\n");
	status = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (ends[i]->db != NULL) {
			ac_db_rollback(ends[i]->db);
			ac_db_close(ends[i]->db);
		}
	}
	return status;
}

int
ac_cli_db(const struct ac_config *cfg, int argc, char **argv)
{
	int status = ac_cli_db_ops(cfg, argc, argv);

	if (status >= 0)
		return status;
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "copy") == 0) {
		bool force = argc == 5 && strcmp(argv[4], "--force") == 0;

		if (argc == 5 && !force)
			goto usage;
		return copy(cfg, argv[2], argv[3], force);
	}
usage:
	fprintf(stderr, "usage: ai-chat-fcgi db copy FROM_URL TO_URL [--force]\n"
	    "       ai-chat-fcgi db backup PATH [--force]\n"
	    "       ai-chat-fcgi db check [URL]\n"
	    "Copies every chat, message, idempotency key, account, failed login and per-user limit count (ids\n"
	    "and timestamps kept) from one database to another (sqlite:///path or postgresql://...), refusing a\n"
	    "target that is not empty unless --force.\n"
	    "backup: a consistent copy of DATABASE_URL's SQLite database while the server runs (PostgreSQL:\n"
	    "use pg_dump).  check: the integrity checks and counts of URL's database (else DATABASE_URL's).\n");
	return 2;
}
