/*
 * The /auth routes: accounts (AUTH=token), the OAuth2 password flow of /auth/token, the request's own
 * account (GET and DELETE /auth/me, in both account modes), and /auth/config (open, every mode).
 * Passwords are only ever handed to common/auth.c: never stored, logged or returned.
 */
#include <stdio.h>
#include <string.h>

#include "../common/auth.h"
#include "../common/json.h"
#include "../common/metrics.h"
#include "../common/repo_users.h"
#include "../common/util.h"
#include "h_auth.h"
#include "handlers.h"

static const struct ac_strspec email_spec = { "email", true, false, 1, 1024 };
static const struct ac_strspec password_spec = { "password", true, false, AC_PASSWORD_MIN, AC_PASSWORD_MAX };
static const struct ac_strspec login_password_spec = { "password", true, false, 0, AC_PASSWORD_MAX };

void
ac_write_user(struct ac_buf *b, const struct ac_user *u)
{
	ac_buf_adds(b, "{\"id\":");
	ac_json_str(b, u->id.ptr, u->id.len);
	ac_buf_adds(b, ",\"email\":");
	ac_json_str(b, u->email.ptr, u->email.len);
	ac_buf_adds(b, u->admin ? ",\"role\":\"admin\"" : ",\"role\":\"user\"");
	ac_buf_adds(b, ",\"created_at\":");
	ac_write_time(b, u->created_at);
	ac_buf_addc(b, '}');
}

enum ac_err
ac_user_out(void *arg, const struct ac_user *u)
{
	struct ac_buf *b = arg;

	ac_write_user(b, u);
	return ac_buf_err(b);
}

/* Only AUTH=token has accounts of its own: false (answered 404) in the other modes. */
static bool
token_mode(struct ac_ctx *c)
{
	if (c->cfg->auth_mode == AC_AUTH_TOKEN)
		return true;
	ac_resp_error(c, 404, c->cfg->auth_mode == AC_AUTH_NONE ?
	    "Not available: there are no accounts (AUTH=none)" :
	    "Not available: the web server authenticates (AUTH=remote-user)");
	return false;
}

bool
ac_valid_email(struct ac_verrs *v, struct json_object *body, char out[AC_EMAIL_MAX + 1], size_t *len)
{
	struct ac_str raw;
	bool present;

	*len = 0;
	if (!ac_valid_body_str(v, body, &email_spec, &raw, &present))
		return false;
	if (!ac_auth_email(raw, out, len)) {
		ac_verrs_add(v, "body", "email", "value is not a valid email address", "value_error.email", false, 0);
		return false;
	}
	return true;
}

void
ac_account_create(struct ac_ctx *c, struct ac_str email, struct ac_str password, bool admin)
{
	char hash[AC_AUTH_HASH_MAX];
	enum ac_err err;

	if (ac_auth_hash(password.ptr, password.len, hash) != AC_OK) {
		ac_resp_error(c, 503, "Out of memory hashing the password");
		return;
	}
	ac_resp_start(c, 201);
	err = ac_repo_user_create(c->repo, email, (struct ac_str){ hash, strlen(hash) }, admin, ac_user_out,
	    &c->resp.body);
	if (err == AC_ECONFLICT)
		ac_resp_error(c, 409, "Email already registered");
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
}

void
ac_h_auth_register(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str password = { NULL, 0 };
	char email[AC_EMAIL_MAX + 1];
	size_t email_len = 0;
	bool present;

	(void)args;
	if (!token_mode(c))
		return;
	if (!c->cfg->registration_open) {
		ac_resp_error(c, 403, "Registration is closed");
		return;
	}
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		ac_valid_email(&v, body, email, &email_len);
		ac_valid_body_str(&v, body, &password_spec, &password, &present);
	}
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_account_create(c, (struct ac_str){ email, email_len }, password, false);
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

struct login {
	struct ac_ctx *c;
	struct ac_str password;
	bool ok;
	char id[256];
	size_t id_len;
	int64_t ver;
};

static enum ac_err
login_user(void *arg, const struct ac_user *u)
{
	struct login *l = arg;

	l->ok = ac_auth_verify(u->password_hash, l->password.ptr, l->password.len) && u->id.len < sizeof(l->id);
	if (l->ok) {
		memcpy(l->id, u->id.ptr, u->id.len);
		l->id_len = u->id.len;
		l->ver = u->token_version;
	}
	return AC_OK;
}

/* Checks the password of email (not an email at all: no account); answers the token, a 401 (with
 * WWW-Authenticate when bearer), or a 429 while the email or the address has failed too often. */
static void
login(struct ac_ctx *c, struct ac_str raw_email, struct ac_str password, bool bearer)
{
	const char *addr = FCGX_GetParam("REMOTE_ADDR", c->envp);
	struct ac_login_limits limits = { (int64_t)c->cfg->login_window_s * 1000000, c->cfg->login_max_email,
	    c->cfg->login_max_addr };
	struct ac_str addr_s = { addr != NULL ? addr : "", addr != NULL ? strlen(addr) : 0 };
	struct login l = { c, password, false, "", 0, 0 };
	char email[AC_EMAIL_MAX + 1], token[AC_TOKEN_MAX], detail[128], retry[24];
	size_t email_len = 0;
	int64_t retry_after = 0;
	enum ac_err err;

	if (!ac_auth_email(raw_email, email, &email_len)) {
		/* Still as long as a wrong password, and counted against the address. */
		email_len = 0;
		email[0] = '\0';
	}
	err = ac_repo_login_check(c->repo, &limits, (struct ac_str){ email, email_len }, addr_s, &retry_after);
	if (err == AC_ETOOBIG) {
		snprintf(detail, sizeof(detail), "Too many failed logins: try again in %lld seconds",
		    (long long)retry_after);
		snprintf(retry, sizeof(retry), "%lld", (long long)retry_after);
		ac_metrics_rate_limited(AC_LIMIT_LOGIN);
		ac_resp_error(c, 429, detail);
		ac_resp_header(c, "Retry-After", retry);
		return;
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return;
	}
	err = email_len > 0 ? ac_repo_user_by_email(c->repo, (struct ac_str){ email, email_len }, login_user, &l) :
	    AC_ENOTFOUND;
	if (err == AC_ENOTFOUND)
		(void)ac_auth_verify((struct ac_str){ NULL, 0 }, password.ptr, password.len);
	else if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return;
	}
	if (!l.ok) {
		err = ac_repo_login_failed(c->repo, &limits, (struct ac_str){ email, email_len }, addr_s);
		if (err != AC_OK) {
			ac_resp_repo_error(c, err, AC_STR(""));
			return;
		}
		ac_metrics_auth_failure(AC_AUTH_PASSWORD);
		ac_resp_error(c, 401, "Invalid email or password");
		if (bearer)
			ac_resp_header(c, "WWW-Authenticate", "Bearer");
		return;
	}
	ac_log_user(c, (struct ac_str){ l.id, l.id_len });
	if ((err = ac_repo_login_succeeded(c->repo, (struct ac_str){ email, email_len })) != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return;
	}
	if (ac_auth_token_issue((struct ac_str){ l.id, l.id_len }, l.ver, token, sizeof(token)) != AC_OK) {
		ac_resp_error(c, 500, "Could not sign the token");
		return;
	}
	ac_resp_start(c, 200);
	ac_resp_header(c, "Cache-Control", "no-store");
	ac_buf_adds(&c->resp.body, "{\"access_token\":");
	ac_json_cstr(&c->resp.body, token);
	ac_buf_adds(&c->resp.body, ",\"token_type\":\"bearer\"}");
}

void
ac_h_auth_login(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str email = { NULL, 0 }, password = { NULL, 0 };
	char norm[AC_EMAIL_MAX + 1];
	size_t norm_len;
	bool present;

	(void)args;
	if (!token_mode(c))
		return;
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		if (ac_valid_email(&v, body, norm, &norm_len))
			email = (struct ac_str){ norm, norm_len };
		ac_valid_body_str(&v, body, &login_password_spec, &password, &present);
	}
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	login(c, email, password, false);
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

/* POST /auth/token: OAuth2's password grant (RFC 6749 4.3), as Swagger UI's Authorize sends it. */
void
ac_h_auth_token(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_query form;
	const struct ac_str *user, *password, *grant;
	struct ac_verrs v;

	(void)args;
	if (!token_mode(c) || !ac_request_form(c, &form))
		return;
	ac_verrs_init(&v);
	user = ac_query_get(&form, "username");
	password = ac_query_get(&form, "password");
	grant = ac_query_get(&form, "grant_type");
	if (user == NULL)
		ac_verrs_add(&v, "body", "username", "field required", "value_error.missing", false, 0);
	if (password == NULL)
		ac_verrs_add(&v, "body", "password", "field required", "value_error.missing", false, 0);
	if (grant != NULL && grant->len > 0 && (grant->len != 8 || memcmp(grant->ptr, "password", 8) != 0))
		ac_verrs_add(&v, "body", "grant_type", "string does not match regex \"password\"",
		    "value_error.str.regex", false, 0);
	else if (password != NULL && password->len > AC_PASSWORD_MAX)
		ac_verrs_add(&v, "body", "password", "ensure this value has at most 1024 characters",
		    "value_error.any_str.max_length", true, AC_PASSWORD_MAX);
	if (v.count > 0)
		ac_resp_invalid(c, &v);
	else
		login(c, *user, *password, true);
	ac_verrs_free(&v);
}

void
ac_h_auth_me(struct ac_ctx *c, const struct ac_str *args)
{
	const struct ac_who *w = &c->who;
	struct ac_user u = { { w->id, w->id_len }, { w->email, w->email_len }, { NULL, 0 }, w->admin, 0,
	    w->created_at };

	(void)args;
	ac_resp_start(c, 200);
	ac_write_user(&c->resp.body, &u);
}

struct check_password {
	struct ac_str password;
	bool ok;
};

static enum ac_err
check_password(void *arg, const struct ac_user *u)
{
	struct check_password *p = arg;

	p->ok = ac_auth_verify(u->password_hash, p->password.ptr, p->password.len);
	return AC_OK;
}

/* DELETE /auth/me {"password"}: the account, its chats and all that is theirs, at once. */
void
ac_h_auth_delete_me(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct check_password p = { { NULL, 0 }, false };
	struct ac_str id = { c->who.id, c->who.id_len };
	bool present;
	enum ac_err err;

	(void)args;
	ac_verrs_init(&v);
	/* An account with a password proves it again; one the web server vouches for has none. */
	if (!ac_request_object(c, &v, c->who.has_password, &body))
		goto out;
	if (body != NULL && c->who.has_password)
		ac_valid_body_str(&v, body, &login_password_spec, &p.password, &present);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (c->who.has_password) {
		err = ac_repo_user_by_id(c->repo, id, check_password, &p);
		if (err != AC_OK && err != AC_ENOTFOUND) {
			ac_resp_repo_error(c, err, AC_STR(""));
			goto out;
		}
		if (!p.ok) {
			ac_resp_error(c, 403, "Invalid password");
			goto out;
		}
	}
	err = ac_repo_user_delete(c->repo, id);
	if (err == AC_OK || err == AC_ENOTFOUND)
		ac_resp_start(c, 204);
	else
		ac_resp_repo_error(c, err, AC_STR(""));
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

void
ac_h_auth_logout(struct ac_ctx *c, const struct ac_str *args)
{
	enum ac_err err;

	(void)args;
	if (!token_mode(c))
		return;
	err = ac_repo_user_logout(c->repo, (struct ac_str){ c->who.id, c->who.id_len });
	if (err != AC_OK && err != AC_ENOTFOUND) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return;
	}
	ac_resp_start(c, 200);
	ac_buf_adds(&c->resp.body, "{\"detail\":\"Logged out\"}");
}

void
ac_h_auth_config(struct ac_ctx *c, const struct ac_str *args)
{
	static const char *const modes[] = { [AC_AUTH_TOKEN] = "token", [AC_AUTH_REMOTE_USER] = "remote-user",
	    [AC_AUTH_NONE] = "none" };

	(void)args;
	ac_resp_start(c, 200);
	ac_buf_adds(&c->resp.body, "{\"mode\":\"");
	ac_buf_adds(&c->resp.body, modes[c->cfg->auth_mode]);
	ac_buf_adds(&c->resp.body, c->cfg->registration_open && c->cfg->auth_mode == AC_AUTH_TOKEN ?
	    "\",\"registration\":\"open\"}" : "\",\"registration\":\"closed\"}");
}
