/*
 * Who the request's user is: the one place every chat, message and model route asks.
 *
 * AUTH=none (the original API): the user is the user_id the request names, in its query or its JSON
 * body, validated like any other field.  AUTH=token: the account of the bearer token (a JWT, or a
 * personal API key "sk-..."), checked by ac_authenticate before the handler runs (the router calls it
 * for every route that is not open);
 * AUTH=remote-user: the account of the web server's REMOTE_USER, made on first sight.  In both
 * account modes a user_id in the request is ignored, so that no handler decides for itself.
 */
#include <strings.h>

#include "../common/auth.h"
#include "../common/metrics.h"
#include "../common/repo_keys.h"
#include "../common/repo_users.h"
#include "handlers.h"

#define USER_ID_MAX 255

static const struct ac_strspec user_id_spec = { "user_id", true, false, 1, USER_ID_MAX };

bool
ac_request_user(struct ac_ctx *c, struct ac_verrs *v, struct json_object *body, struct ac_str *user_id)
{
	bool present, ok;

	user_id->ptr = NULL;
	user_id->len = 0;
	if (c->cfg->auth_mode != AC_AUTH_NONE) {
		if (!c->who.known) {	/* a route left open by mistake: never anyone's chats */
			ac_verrs_add(v, "header", "authorization", "field required", "value_error.missing", false, 0);
			return false;
		}
		user_id->ptr = c->who.id;
		user_id->len = c->who.id_len;
		return true;
	}
	if (body != NULL)
		ok = ac_valid_body_str(v, body, &user_id_spec, user_id, &present);
	else
		ok = ac_valid_str(v, "query", &user_id_spec, ac_query_get(&c->req.query, "user_id"), user_id);
	if (ok)
		ac_log_user(c, *user_id);
	return ok;
}

void
ac_resp_unauthorized(struct ac_ctx *c, const char *detail)
{
	ac_resp_error(c, 401, detail);
	ac_resp_header(c, "WWW-Authenticate", "Bearer");
}

struct who_out {
	struct ac_ctx *c;
	int64_t ver;		/* the token's, or -1 */
	bool stale;
};

static enum ac_err
who_in(void *arg, const struct ac_user *u)
{
	struct who_out *o = arg;
	struct ac_who *w = &o->c->who;

	if (u->id.len >= sizeof(w->id) || u->email.len >= sizeof(w->email))
		return AC_ETOOBIG;
	if (o->ver >= 0 && u->token_version != o->ver) {
		o->stale = true;
		return AC_OK;
	}
	memcpy(w->id, u->id.ptr, u->id.len);
	w->id[u->id.len] = '\0';
	w->id_len = u->id.len;
	memcpy(w->email, u->email.ptr, u->email.len);
	w->email[u->email.len] = '\0';
	w->email_len = u->email.len;
	w->admin = u->admin;
	w->has_password = u->password_hash.ptr != NULL;
	w->created_at = u->created_at;
	w->known = true;
	return AC_OK;
}

/* The token of an "Authorization: Bearer <token>" header (the scheme in any case), or NULL. */
static const char *
bearer(const char *header, size_t *len)
{
	const char *p;

	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	p = header + 7;
	while (*p == ' ')
		p++;
	*len = strlen(p);
	while (*len > 0 && p[*len - 1] == ' ')
		(*len)--;
	return *len > 0 ? p : NULL;
}

/*
 * A personal API key ("sk-..."): its account, found by the key's hash on every request (no process
 * remembers a key, so a revoke holds at once everywhere).  A key names no token version: a logout
 * does not end it, a revoke or the account's deletion does.
 */
static bool
by_key(struct ac_ctx *c, const char *key, size_t len)
{
	char hash[AC_KEY_HASH_LEN + 1];
	struct who_out o = { c, -1, false };
	enum ac_err err;

	if (!ac_key_valid(key, len)) {
		ac_metrics_auth_failure(AC_AUTH_MALFORMED);
		ac_resp_unauthorized(c, "Invalid authentication credentials");
		return false;
	}
	ac_key_hash(key, len, hash);
	err = ac_repo_key_user(c->repo, (struct ac_str){ hash, AC_KEY_HASH_LEN }, who_in, &o);
	if (err == AC_ENOTFOUND) {	/* never made, or revoked: the same answer */
		ac_metrics_auth_failure(AC_AUTH_INVALID);
		ac_resp_unauthorized(c, "Invalid authentication credentials");
		return false;
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err == AC_ETOOBIG ? AC_EDB : err, AC_STR(""));
		return false;
	}
	return true;
}

static bool
by_token(struct ac_ctx *c)
{
	const char *token;
	size_t len = 0;
	struct ac_claims claims;
	struct who_out o = { c, 0, false };
	enum ac_err err;

	token = bearer(FCGX_GetParam("HTTP_AUTHORIZATION", c->envp), &len);
	if (token == NULL) {
		ac_metrics_auth_failure(AC_AUTH_MISSING);
		ac_resp_unauthorized(c, "Not authenticated");
		return false;
	}
	if (ac_key_like(token, len))
		return by_key(c, token, len);
	if (ac_auth_token_check(token, len, &claims) != AC_OK) {
		ac_metrics_auth_failure(AC_AUTH_INVALID);	/* a bad signature, malformed, or expired */
		ac_resp_unauthorized(c, "Invalid authentication credentials");
		return false;
	}
	o.ver = claims.ver;
	if (claims.outside) {	/* an outside provider's user: no token version of ours */
		o.ver = -1;
		err = ac_repo_user_ensure_subject(c->repo, (struct ac_str){ claims.subject, claims.subject_len },
		    (struct ac_str){ claims.email, claims.email_len }, who_in, &o);
	} else {
		err = ac_repo_user_by_id(c->repo, (struct ac_str){ claims.sub, claims.sub_len }, who_in, &o);
	}
	if (err == AC_ENOTFOUND) {
		ac_metrics_auth_failure(AC_AUTH_REVOKED);
		ac_resp_unauthorized(c, "User not found");
		return false;
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err == AC_ETOOBIG ? AC_EDB : err, AC_STR(""));
		return false;
	}
	if (o.stale) {
		ac_metrics_auth_failure(AC_AUTH_REVOKED);
		ac_resp_unauthorized(c, "Session expired");
		return false;
	}
	return true;
}

static bool
by_remote_user(struct ac_ctx *c)
{
	const char *name = FCGX_GetParam("REMOTE_USER", c->envp);
	char email[AC_EMAIL_MAX + 1];
	size_t n = 0;
	struct who_out o = { c, -1, false };
	enum ac_err err;

	/* The web server's user name, stored as an email is: trimmed, ASCII lower case. */
	if (name == NULL || !ac_auth_name((struct ac_str){ name, strlen(name) }, email, &n)) {
		ac_metrics_auth_failure(AC_AUTH_MISSING);
		ac_resp_unauthorized(c, "Not authenticated");
		return false;
	}
	err = ac_repo_user_ensure(c->repo, (struct ac_str){ email, n }, who_in, &o);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err == AC_ENOTFOUND || err == AC_ETOOBIG ? AC_EDB : err, AC_STR(""));
		return false;
	}
	return true;
}

bool
ac_authenticate(struct ac_ctx *c, bool admin)
{
	bool ok = c->cfg->auth_mode == AC_AUTH_TOKEN ? by_token(c) : by_remote_user(c);

	if (!ok)
		return false;
	ac_log_user(c, (struct ac_str){ c->who.id, c->who.id_len });
	if (admin && !c->who.admin) {
		ac_resp_error(c, 403, "Admin access required");
		return false;
	}
	return true;
}
