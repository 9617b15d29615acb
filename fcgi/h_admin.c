/* The /admin routes: accounts and everyone's chats, for admins (the router has checked the role). */
#include <stdio.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "h_auth.h"
#include "handlers.h"

#define USERS_LIMIT_MAX 500
#define USERS_LIMIT_DEFAULT 100
#define CHATS_LIMIT_MAX 100
#define CHATS_LIMIT_DEFAULT 50
#define MESSAGES_LIMIT_MAX 1000
#define MESSAGES_LIMIT_DEFAULT 500

static const struct ac_strspec password_spec = { "password", true, false, AC_PASSWORD_MIN, AC_PASSWORD_MAX };
static const struct ac_strspec role_spec = { "role", true, false, 1, 16 };

static void
user_missing(struct ac_ctx *c, struct ac_str id)
{
	struct ac_buf *b = &c->resp.body;

	ac_resp_start(c, 404);
	ac_buf_adds(b, "{\"detail\":\"User with id '");
	ac_json_escape(b, id.ptr, id.len);
	ac_buf_adds(b, "' not found\"}");
}

/* body's "role": "user" or "admin"; required unless def is given (>= 0). */
static void
valid_role(struct ac_verrs *v, struct json_object *body, int def, bool *admin)
{
	struct ac_str role = { NULL, 0 };
	bool present = false;

	*admin = def == 1;
	if (def >= 0 && !json_object_object_get_ex(body, "role", NULL))
		return;
	if (!ac_valid_body_str(v, body, &role_spec, &role, &present))
		return;
	if (role.len == 5 && memcmp(role.ptr, "admin", 5) == 0)
		*admin = true;
	else if (role.len == 4 && memcmp(role.ptr, "user", 4) == 0)
		*admin = false;
	else
		ac_verrs_add(v, "body", "role", "value is not a valid enumeration member; permitted: 'user', 'admin'",
		    "type_error.enum", false, 0);
}

struct list {
	struct ac_buf *b;
	int64_t n;
};

static enum ac_err
user_item(void *arg, const struct ac_user *u)
{
	struct list *l = arg;

	if (l->n++ > 0)
		ac_buf_addc(l->b, ',');
	ac_write_user(l->b, u);
	return ac_buf_err(l->b);
}

void
ac_h_admin_users(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	int64_t limit, offset;
	struct list l = { &c->resp.body, 0 };
	enum ac_err err;

	(void)args;
	ac_verrs_init(&v);
	ac_valid_int(&v, "limit", ac_query_get(&c->req.query, "limit"), USERS_LIMIT_DEFAULT, 1, USERS_LIMIT_MAX,
	    &limit);
	ac_valid_int(&v, "offset", ac_query_get(&c->req.query, "offset"), 0, 0, INT64_MAX, &offset);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_resp_start(c, 200);
	ac_buf_addc(l.b, '[');
	err = ac_repo_user_list(c->repo, limit, offset, user_item, &l);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_buf_addc(l.b, ']');
out:
	ac_verrs_free(&v);
}

void
ac_h_admin_user_create(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str password = { NULL, 0 };
	char email[AC_EMAIL_MAX + 1];
	size_t email_len = 0;
	bool present, admin = false;

	(void)args;
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		ac_valid_email(&v, body, email, &email_len);
		ac_valid_body_str(&v, body, &password_spec, &password, &present);
		valid_role(&v, body, 0, &admin);
	}
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_account_create(c, (struct ac_str){ email, email_len }, password, admin);
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

void
ac_h_admin_user_role(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	bool admin = false;
	enum ac_err err;

	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL)
		valid_role(&v, body, -1, &admin);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_resp_start(c, 200);
	err = ac_repo_user_set_role(c->repo, args[0], admin, ac_user_out, &c->resp.body);
	if (err == AC_ENOTFOUND)
		user_missing(c, args[0]);
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

void
ac_h_admin_user_delete(struct ac_ctx *c, const struct ac_str *args)
{
	enum ac_err err = ac_repo_user_delete(c->repo, args[0]);

	if (err == AC_ENOTFOUND)
		user_missing(c, args[0]);
	else if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
	else
		ac_resp_start(c, 204);
}

static enum ac_err
chat_item(void *arg, const struct ac_chat *chat)
{
	struct list *l = arg;

	if (l->n++ > 0)
		ac_buf_addc(l->b, ',');
	ac_write_chat(l->b, chat);
	return ac_buf_err(l->b);
}

void
ac_h_admin_user_chats(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	int64_t limit, offset, total = 0;
	struct list l = { &c->resp.body, 0 };
	enum ac_err err;

	ac_verrs_init(&v);
	ac_valid_int(&v, "limit", ac_query_get(&c->req.query, "limit"), CHATS_LIMIT_DEFAULT, 1, CHATS_LIMIT_MAX,
	    &limit);
	ac_valid_int(&v, "offset", ac_query_get(&c->req.query, "offset"), 0, 0, INT64_MAX, &offset);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	err = ac_repo_user_by_id(c->repo, args[0], NULL, NULL);
	if (err == AC_ENOTFOUND) {
		user_missing(c, args[0]);
		goto out;
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_resp_start(c, 200);
	ac_buf_adds(l.b, "{\"chats\":[");
	err = ac_repo_chat_list(c->repo, args[0], limit, offset, &total, chat_item, &l);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_buf_adds(l.b, "],\"total\":");
	ac_buf_addi(l.b, total);
	ac_buf_addc(l.b, '}');
out:
	ac_verrs_free(&v);
}

static enum ac_err
message_item(void *arg, const struct ac_message *m)
{
	struct list *l = arg;

	if (l->n++ > 0)
		ac_buf_addc(l->b, ',');
	ac_write_message(l->b, m);
	return ac_buf_err(l->b);
}

void
ac_h_admin_chat_messages(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct ac_page page = { 0, 0, false };
	struct list l = { &c->resp.body, 0 };
	char owner[256];
	size_t owner_len = 0;
	bool more = false;
	enum ac_err err;

	ac_verrs_init(&v);
	ac_valid_int(&v, "limit", ac_query_get(&c->req.query, "limit"), MESSAGES_LIMIT_DEFAULT, 1,
	    MESSAGES_LIMIT_MAX, &page.limit);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	err = ac_uuid_valid(args[0].ptr, args[0].len) ? ac_repo_chat_owner(c->repo, args[0], owner, sizeof(owner),
	    &owner_len) : AC_ENOTFOUND;
	if (err == AC_OK) {
		ac_resp_start(c, 200);
		ac_buf_addc(l.b, '[');
		err = ac_repo_message_list(c->repo, args[0], (struct ac_str){ owner, owner_len }, &page, &more,
		    message_item, &l);
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, args[0]);
		goto out;
	}
	ac_buf_addc(l.b, ']');
out:
	ac_verrs_free(&v);
}
