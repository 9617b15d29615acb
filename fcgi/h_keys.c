/*
 * Personal API keys (AUTH=token): POST, GET /auth/keys and DELETE /auth/keys/{key_id} for the
 * request's own account, GET /admin/users/{user_id}/keys and DELETE .../keys/{key_id} for admins
 * (the router has checked the role).  A key is answered once, when made; after that only its hash is
 * stored (common/repo_keys.c), and lists show its non-secret prefix.
 */
#include <string.h>

#include <sodium.h>

#include "../common/json.h"
#include "../common/repo_keys.h"
#include "../common/util.h"
#include "handlers.h"

static const struct ac_strspec name_spec = { "name", true, false, 1, AC_KEY_NAME_MAX };

/* Keys exist in AUTH=token only: false (answered 404) in the other modes. */
static bool
token_mode(struct ac_ctx *c)
{
	if (c->cfg->auth_mode == AC_AUTH_TOKEN)
		return true;
	ac_resp_error(c, 404, "Not available: API keys need AUTH=token");
	return false;
}

static void
missing(struct ac_ctx *c, const char *what, struct ac_str id)
{
	struct ac_buf *b = &c->resp.body;

	ac_resp_start(c, 404);
	ac_buf_adds(b, "{\"detail\":\"");
	ac_buf_adds(b, what);
	ac_buf_adds(b, " with id '");
	ac_json_escape(b, id.ptr, id.len);
	ac_buf_adds(b, "' not found\"}");
}

/* The ApiKey object, with the key itself when just made (key non-NULL). */
static void
write_key(struct ac_buf *b, const struct ac_api_key *k, const char *key)
{
	ac_buf_adds(b, "{\"id\":");
	ac_json_str(b, k->id.ptr, k->id.len);
	ac_buf_adds(b, ",\"name\":");
	ac_json_str(b, k->name.ptr, k->name.len);
	if (key != NULL) {
		ac_buf_adds(b, ",\"key\":");
		ac_json_cstr(b, key);
	}
	ac_buf_adds(b, ",\"prefix\":");
	ac_json_str(b, k->prefix.ptr, k->prefix.len);
	ac_buf_adds(b, ",\"created_at\":");
	ac_write_time(b, k->created_at);
	ac_buf_adds(b, ",\"last_used_at\":");
	if (k->last_used_at > 0)
		ac_write_time(b, k->last_used_at);
	else
		ac_buf_adds(b, "null");
	ac_buf_addc(b, '}');
}

struct made {
	struct ac_buf *b;
	const char *key;
};

static enum ac_err
made_out(void *arg, const struct ac_api_key *k)
{
	struct made *m = arg;

	write_key(m->b, k, m->key);
	return ac_buf_err(m->b);
}

void
ac_h_keys_create(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str name = { NULL, 0 };
	char key[AC_KEY_LEN + 1], hash[AC_KEY_HASH_LEN + 1];
	struct made m = { &c->resp.body, key };
	bool present;
	enum ac_err err;

	(void)args;
	if (!token_mode(c))
		return;
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL)
		ac_valid_body_str(&v, body, &name_spec, &name, &present);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_key_new(key);
	ac_key_hash(key, AC_KEY_LEN, hash);
	ac_resp_start(c, 201);
	ac_resp_header(c, "Cache-Control", "no-store");
	err = ac_repo_key_create(c->repo, (struct ac_str){ c->who.id, c->who.id_len }, name,
	    (struct ac_str){ key, AC_KEY_PREFIX_LEN }, (struct ac_str){ hash, AC_KEY_HASH_LEN }, made_out, &m);
	if (err == AC_ETOOBIG)
		ac_resp_error(c, 409, "Too many API keys: an account has at most 100 (revoke one first)");
	else if (err == AC_ENOTFOUND)
		ac_resp_unauthorized(c, "User not found");
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
out:
	sodium_memzero(key, sizeof(key));
	json_object_put(body);
	ac_verrs_free(&v);
}

struct list {
	struct ac_buf *b;
	int64_t n;
};

static enum ac_err
key_item(void *arg, const struct ac_api_key *k)
{
	struct list *l = arg;

	if (l->n++ > 0)
		ac_buf_addc(l->b, ',');
	write_key(l->b, k, NULL);
	return ac_buf_err(l->b);
}

static void
list(struct ac_ctx *c, struct ac_str user_id)
{
	struct list l = { &c->resp.body, 0 };
	enum ac_err err;

	ac_resp_start(c, 200);
	ac_buf_addc(l.b, '[');
	err = ac_repo_key_list(c->repo, user_id, key_item, &l);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return;
	}
	ac_buf_addc(l.b, ']');
}

static void
revoke(struct ac_ctx *c, struct ac_str user_id, struct ac_str key_id)
{
	enum ac_err err = ac_uuid_valid(key_id.ptr, key_id.len) ? ac_repo_key_delete(c->repo, user_id, key_id) :
	    AC_ENOTFOUND;

	if (err == AC_ENOTFOUND)
		missing(c, "API key", key_id);
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
	else
		ac_resp_start(c, 204);
}

void
ac_h_keys_list(struct ac_ctx *c, const struct ac_str *args)
{
	(void)args;
	if (token_mode(c))
		list(c, (struct ac_str){ c->who.id, c->who.id_len });
}

void
ac_h_key_delete(struct ac_ctx *c, const struct ac_str *args)
{
	if (token_mode(c))
		revoke(c, (struct ac_str){ c->who.id, c->who.id_len }, args[0]);
}

/* The account of an admin route's {user_id}: false when it has answered (404, or the database's). */
static bool
user_known(struct ac_ctx *c, struct ac_str id)
{
	enum ac_err err = ac_repo_user_by_id(c->repo, id, NULL, NULL);

	if (err == AC_ENOTFOUND)
		missing(c, "User", id);
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
	return err == AC_OK;
}

void
ac_h_admin_user_keys(struct ac_ctx *c, const struct ac_str *args)
{
	if (token_mode(c) && user_known(c, args[0]))
		list(c, args[0]);
}

void
ac_h_admin_user_key_delete(struct ac_ctx *c, const struct ac_str *args)
{
	if (token_mode(c) && user_known(c, args[0]))
		revoke(c, args[0], args[1]);
}
