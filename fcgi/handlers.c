/* The chat management API and the service routes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "handlers.h"
#include "pages.h"

#define TITLE_MAX 200
#define CHATS_LIMIT_MAX 100
#define CHATS_LIMIT_DEFAULT 50
#define MESSAGES_LIMIT_MAX 500
#define MESSAGES_LIMIT_DEFAULT 100
#define SYSTEM_PROMPT_MAX 8000

static const struct ac_strspec title_create_spec = { "title", false, true, 1, TITLE_MAX };

void
ac_write_time(struct ac_buf *b, int64_t t)
{
	char ts[AC_TIME_LEN + 1];

	ac_time_format(t, ts);
	ac_buf_addc(b, '"');
	ac_buf_add(b, ts, AC_TIME_LEN);
	ac_buf_addc(b, '"');
}

/* The Chat object. */
static void
write_chat(struct ac_buf *b, const struct ac_chat *chat)
{
	ac_buf_add(b, "{\"id\":", 6);
	ac_json_str(b, chat->id.ptr, chat->id.len);
	ac_buf_add(b, ",\"user_id\":", 11);
	ac_json_str(b, chat->user_id.ptr, chat->user_id.len);
	ac_buf_add(b, ",\"title\":", 9);
	if (chat->title.ptr != NULL)
		ac_json_str(b, chat->title.ptr, chat->title.len);
	else
		ac_buf_add(b, "null", 4);
	ac_buf_add(b, ",\"created_at\":", 14);
	ac_write_time(b, chat->created_at);
	ac_buf_add(b, ",\"updated_at\":", 14);
	ac_write_time(b, chat->updated_at);
	ac_buf_add(b, ",\"message_count\":", 17);
	ac_buf_addi(b, chat->message_count);
	ac_buf_adds(b, ",\"system_prompt\":");
	if (chat->system_prompt.ptr != NULL)
		ac_json_str(b, chat->system_prompt.ptr, chat->system_prompt.len);
	else
		ac_buf_add(b, "null", 4);
	ac_buf_adds(b, ",\"model\":");
	if (chat->model.ptr != NULL)
		ac_json_str(b, chat->model.ptr, chat->model.len);
	else
		ac_buf_add(b, "null", 4);
	ac_buf_adds(b, chat->pinned ? ",\"pinned\":true" : ",\"pinned\":false");
	ac_buf_adds(b, chat->archived ? ",\"archived\":true}" : ",\"archived\":false}");
}

static enum ac_err
chat_out(void *arg, const struct ac_chat *chat)
{
	struct ac_buf *b = arg;

	write_chat(b, chat);
	return ac_buf_err(b);
}

void
ac_write_chat(struct ac_buf *b, const struct ac_chat *chat)
{
	write_chat(b, chat);
}

/* Items of a list: a comma before all but the first. */
struct list_out {
	struct ac_ctx *c;
	struct ac_buf *b;
	int64_t n;
	bool more;	/* messages: set by the repository before the first row */
};

static void
more_header(struct list_out *o)
{
	ac_resp_header(o->c, "X-Has-More", o->more ? "true" : "false");
}

static enum ac_err
chat_item_out(void *arg, const struct ac_chat *chat)
{
	struct list_out *o = arg;

	if (o->n++ > 0)
		ac_buf_addc(o->b, ',');
	write_chat(o->b, chat);
	return ac_buf_err(o->b);
}

void
ac_write_message(struct ac_buf *b, const struct ac_message *m)
{
	ac_buf_add(b, "{\"id\":", 6);
	ac_buf_addi(b, m->id);
	ac_buf_add(b, ",\"chat_id\":", 11);
	ac_json_str(b, m->chat_id.ptr, m->chat_id.len);
	if (m->role == AC_ROLE_ASSISTANT)
		ac_buf_adds(b, ",\"role\":\"assistant\",\"content\":");
	else
		ac_buf_adds(b, ",\"role\":\"user\",\"content\":");
	ac_json_str(b, m->content.ptr, m->content.len);
	ac_buf_add(b, ",\"created_at\":", 14);
	ac_write_time(b, m->created_at);
	if (m->incomplete)
		ac_buf_adds(b, ",\"incomplete\":true");
	ac_buf_adds(b, ",\"parent_id\":");
	if (m->parent_id > 0)
		ac_buf_addi(b, m->parent_id);
	else
		ac_buf_add(b, "null", 4);
	ac_buf_adds(b, ",\"sibling_ids\":[");
	for (size_t i = 0; i < m->sibling_count; i++) {
		if (i > 0)
			ac_buf_addc(b, ',');
		ac_buf_addi(b, m->sibling_ids[i]);
	}
	ac_buf_add(b, "]}", 2);
}

static enum ac_err
message_item_out(void *arg, const struct ac_message *m)
{
	struct list_out *o = arg;
	struct ac_buf *b = o->b;

	if (o->n++ > 0)
		ac_buf_addc(b, ',');
	else
		more_header(o);	/* before the body can start streaming */
	ac_write_message(b, m);
	return ac_buf_err(b);
}

/*
 * Conditional GETs.  A chat's pages are a function of its version (ac_repo_chat_version), so the
 * version is their entity tag, a strong one ("c..." for the chat, "m..." for its message pages);
 * Cache-Control: private, no-cache lets a browser keep them and ask again each time.
 */
#define ETAG_MAX 24

static void
etag_of(char out[ETAG_MAX], char kind, int64_t version)
{
	snprintf(out, ETAG_MAX, "\"%c%llx\"", kind, (unsigned long long)version);
}

/* Whether If-None-Match (a list of tags, or "*") names tag; weak tags compare by their opaque part. */
static bool
none_match_hit(const char *header, const char *tag)
{
	size_t tag_len = strlen(tag);
	const char *p = header;

	if (p == NULL)
		return false;
	while (*p != '\0') {
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return false;	/* malformed: no match, the full answer */
		end = strchr(p + 1, '"');
		if (end == NULL)
			return false;
		if ((size_t)(end + 1 - p) == tag_len && memcmp(p, tag, tag_len) == 0)
			return true;
		p = end + 1;
	}
	return false;
}

/* Sets the tag on the answer; true (the answer is a 304, with no body) when the client has it. */
static bool
not_modified(struct ac_ctx *c, const char *tag)
{
	bool hit = none_match_hit(c->req.if_none_match, tag);

	if (hit)
		ac_resp_start(c, 304);
	ac_resp_header(c, "ETag", tag);
	ac_resp_header(c, "Cache-Control", "private, no-cache");
	return hit;
}

struct chat_cond {
	struct ac_ctx *c;
	bool matched;
};

static enum ac_err
chat_cond_out(void *arg, const struct ac_chat *chat)
{
	struct chat_cond *cc = arg;
	char tag[ETAG_MAX];

	etag_of(tag, 'c', chat->updated_at);
	cc->matched = not_modified(cc->c, tag);
	if (cc->matched)
		return AC_OK;
	write_chat(&cc->c->resp.body, chat);
	return ac_buf_err(&cc->c->resp.body);
}

/* Whether a path's chat id can name a chat: others are answered 404 without a lookup. */
bool
ac_chat_id_ok(struct ac_ctx *c, struct ac_str id)
{
	if (ac_uuid_valid(id.ptr, id.len))
		return true;
	ac_resp_repo_error(c, AC_ENOTFOUND, id);
	return false;
}

void
ac_h_root(struct ac_ctx *c, const struct ac_str *args)
{
	(void)args;
	ac_resp_start(c, 200);
	ac_buf_adds(&c->resp.body, "{\"message\":\"AI Chat Backend API\",\"version\":\"1.0.0\",\"docs\":\"/docs\"}");
}

void
ac_h_openapi(struct ac_ctx *c, const struct ac_str *args)
{
	(void)args;
	ac_resp_start(c, 200);
	ac_buf_add(&c->resp.body, ac_openapi_doc, ac_openapi_doc_len);
}

void
ac_h_health(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	bool deep = false;
	enum ac_err err;
	char why[320], detail[400];

	(void)args;
	ac_verrs_init(&v);
	if (!ac_valid_bool(&v, "deep", ac_query_get(&c->req.query, "deep"), false, &deep)) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	err = ac_repo_ping(c->repo);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err == AC_ENOTFOUND ? AC_EDB : err, AC_STR(""));
		goto out;
	}
	if (!deep) {
		ac_resp_start(c, 200);
		ac_buf_adds(&c->resp.body, "{\"status\":\"healthy\"}");
		goto out;
	}
	/* ?deep=1: the provider too. */
	if (ac_provider_ping(c->provider, why, sizeof(why)) != AC_LLM_OK) {
		ac_scrub(why, c->cfg->api_key);
		snprintf(detail, sizeof(detail), "Provider unavailable: %s", why);
		ac_resp_error(c, 503, detail);
		goto out;
	}
	ac_resp_start(c, 200);
	ac_buf_adds(&c->resp.body, "{\"status\":\"healthy\",\"database\":\"ok\",\"provider\":\"ok\"}");
out:
	ac_verrs_free(&v);
}

void
ac_h_chat_create(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str user_id = { NULL, 0 }, title = { NULL, 0 };
	bool present;
	enum ac_err err;

	(void)args;
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		ac_request_user(c, &v, body, &user_id);
		ac_valid_body_str(&v, body, &title_create_spec, &title, &present);
		if (!present)
			title.ptr = NULL;
	}
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_resp_start(c, 201);
	err = ac_repo_chat_create(c->repo, user_id, title, chat_out, &c->resp.body);
	if (err != AC_OK)
		ac_resp_repo_error(c, err, AC_STR(""));
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

void
ac_h_chat_list(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct ac_str user_id;
	int64_t limit, offset, total = 0;
	struct list_out o = { c, &c->resp.body, 0, false };
	bool archived = false;
	enum ac_err err;

	(void)args;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	ac_valid_bool(&v, "archived", ac_query_get(&c->req.query, "archived"), false, &archived);
	ac_valid_int(&v, "limit", ac_query_get(&c->req.query, "limit"), CHATS_LIMIT_DEFAULT, 1,
	    CHATS_LIMIT_MAX, &limit);
	ac_valid_int(&v, "offset", ac_query_get(&c->req.query, "offset"), 0, 0, INT64_MAX, &offset);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_resp_start(c, 200);
	ac_buf_adds(o.b, "{\"chats\":[");
	err = ac_repo_chat_list_archived(c->repo, user_id, archived, limit, offset, &total, chat_item_out, &o);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_buf_adds(o.b, "],\"total\":");
	ac_buf_addi(o.b, total);
	ac_buf_addc(o.b, '}');
out:
	ac_verrs_free(&v);
}

/* The user of a /chats/{chat_id} route without a body: false when answered (422, or 404 for an id
 * that is no UUID). */
static bool
chat_target(struct ac_ctx *c, const struct ac_str *args, struct ac_str *user_id)
{
	struct ac_verrs v;
	bool ok;

	ac_verrs_init(&v);
	ok = ac_request_user(c, &v, NULL, user_id);
	if (!ok)
		ac_resp_invalid(c, &v);
	ac_verrs_free(&v);
	return ok && ac_chat_id_ok(c, args[0]);
}

void
ac_h_chat_get(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_str user_id;
	enum ac_err err;

	struct chat_cond cc = { c, false };

	if (!chat_target(c, args, &user_id))
		return;
	ac_resp_start(c, 200);
	err = ac_repo_chat_get(c->repo, args[0], user_id, chat_cond_out, &cc);
	if (err != AC_OK)
		ac_resp_repo_error(c, err, args[0]);
}

/* A boolean member of a JSON object body: *set when present (null is refused). */
static void
body_bool(struct ac_verrs *v, struct json_object *body, const char *name, bool *set, bool *out)
{
	struct json_object *m;

	*set = false;
	if (!json_object_object_get_ex(body, name, &m))
		return;
	if (m == NULL)
		ac_verrs_add(v, "body", name, "none is not an allowed value", "type_error.none.not_allowed", false, 0);
	else if (!json_object_is_type(m, json_type_boolean))
		ac_verrs_add(v, "body", name, "value could not be parsed to a boolean", "type_error.bool", false, 0);
	else {
		*set = true;
		*out = json_object_get_boolean(m);
	}
}

/* The settings of a PATCH body into u; at least one must be there (else title is missing). */
static void
chat_update_body(struct ac_ctx *c, struct ac_verrs *v, struct json_object *body, struct ac_chat_update *u)
{
	static const struct ac_strspec title_spec = { "title", false, false, 1, TITLE_MAX };
	static const struct ac_strspec prompt_spec = { "system_prompt", false, true, 1, SYSTEM_PROMPT_MAX };
	static const struct ac_strspec model_spec = { "model", false, true, 1, 64 };
	struct json_object *m;
	bool present;
	int before = v->count;

	ac_valid_body_str(v, body, &title_spec, &u->title, &u->set_title);
	if (json_object_object_get_ex(body, "system_prompt", NULL)) {
		u->set_system_prompt = true;
		if (!ac_valid_body_str(v, body, &prompt_spec, &u->system_prompt, &present) && !present)
			u->system_prompt = (struct ac_str){ NULL, 0 };
	}
	if (json_object_object_get_ex(body, "model", &m)) {
		u->set_model = true;
		if (ac_valid_body_str(v, body, &model_spec, &u->model, &present)) {
			if (ac_models_find(&c->cfg->models, u->model.ptr, u->model.len) == NULL)
				ac_models_invalid(v, &c->cfg->models);
		} else if (!present) {
			u->model = (struct ac_str){ NULL, 0 };
		}
	}
	body_bool(v, body, "pinned", &u->set_pinned, &u->pinned);
	body_bool(v, body, "archived", &u->set_archived, &u->archived);
	if (v->count == before && !u->set_title && !u->set_system_prompt && !u->set_model && !u->set_pinned &&
	    !u->set_archived)
		ac_verrs_add(v, "body", "title", "field required", "value_error.missing", false, 0);
}

void
ac_h_chat_rename(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str user_id = { NULL, 0 };
	struct ac_chat_update u;
	enum ac_err err;

	memset(&u, 0, sizeof(u));
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL)
		chat_update_body(c, &v, body, &u);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (!ac_chat_id_ok(c, args[0]))
		goto out;
	ac_resp_start(c, 200);
	err = ac_repo_chat_update(c->repo, args[0], user_id, &u, chat_out, &c->resp.body);
	if (err != AC_OK)
		ac_resp_repo_error(c, err, args[0]);
out:
	json_object_put(body);
	ac_verrs_free(&v);
}

void
ac_h_chat_delete(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_str user_id;
	enum ac_err err;

	if (!chat_target(c, args, &user_id))
		return;
	err = ac_repo_chat_delete(c->repo, args[0], user_id);
	if (err != AC_OK)
		ac_resp_repo_error(c, err, args[0]);
	else
		ac_resp_start(c, 204);
}

void
ac_h_message_list(struct ac_ctx *c, const struct ac_str *args)
{
	const struct ac_query *q = &c->req.query;
	const struct ac_str *before = ac_query_get(q, "before");
	const struct ac_str *after = ac_query_get(q, "after");
	struct ac_verrs v;
	struct ac_str user_id;
	struct ac_page page = { 0, 0, false };
	struct list_out o = { c, &c->resp.body, 0, false };
	int64_t before_id = 0, after_id = 0, version = 0;
	bool newest = false;
	char tag[ETAG_MAX];
	struct ac_page_key key;
	enum ac_err err;

	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	ac_valid_int(&v, "limit", ac_query_get(q, "limit"), MESSAGES_LIMIT_DEFAULT, 1, MESSAGES_LIMIT_MAX,
	    &page.limit);
	ac_valid_int(&v, "before", before, 0, 0, INT64_MAX, &before_id);
	ac_valid_int(&v, "after", after, 0, 0, INT64_MAX, &after_id);
	ac_valid_bool(&v, "newest", ac_query_get(q, "newest"), false, &newest);
	if ((before != NULL) + (after != NULL) + newest > 1)
		ac_verrs_add(&v, "query", before != NULL ? "before" : "after",
		    "only one of before, after and newest may be given", "value_error", false, 0);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (!ac_chat_id_ok(c, args[0]))
		goto out;
	if (newest) {
		page.backward = true;
		page.cursor = INT64_MAX;
	} else if (before != NULL) {
		page.backward = true;
		page.cursor = before_id;
	} else {
		page.cursor = after_id;
	}
	/* The version before the page: a write between the two leaves the tag older than the page, so
	 * the next conditional request gets the page again, never a stale one kept as fresh. */
	err = ac_repo_chat_version(c->repo, args[0], user_id, &version);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, args[0]);
		goto out;
	}
	ac_resp_start(c, 200);
	etag_of(tag, 'm', version);
	if (not_modified(c, tag))
		goto out;
	key.chat_id = args[0];
	key.version = version;
	key.limit = page.limit;
	key.cursor = page.cursor;
	key.backward = page.backward;
	if (ac_pages_get(&key, o.b, &o.more)) {
		more_header(&o);
		goto out;
	}
	ac_buf_addc(o.b, '[');
	err = ac_repo_message_list(c->repo, args[0], user_id, &page, &o.more, message_item_out, &o);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, args[0]);
		goto out;
	}
	ac_buf_addc(o.b, ']');
	if (o.n == 0)
		more_header(&o);
	if (!c->resp.committed && ac_buf_err(o.b) == AC_OK)	/* a page too large streamed out: not kept */
		ac_pages_put(&key, o.b->data, o.b->len, o.more);
out:
	ac_verrs_free(&v);
}

void
ac_h_chat_active(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *body = NULL, *id;
	struct ac_str user_id = { NULL, 0 };
	int64_t message_id = 0;
	bool found = false;
	enum ac_err err;

	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		if (!json_object_object_get_ex(body, "message_id", &id))
			ac_verrs_add(&v, "body", "message_id", "field required", "value_error.missing", false, 0);
		else if (id == NULL || !json_object_is_type(id, json_type_int) || json_object_get_int64(id) < 1)
			ac_verrs_add(&v, "body", "message_id", "value is not a valid integer", "type_error.integer",
			    false, 0);
		else
			message_id = json_object_get_int64(id);
	}
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (!ac_chat_id_ok(c, args[0]))
		goto out;
	ac_resp_start(c, 200);
	err = ac_repo_set_active(c->repo, args[0], user_id, message_id, &found, chat_out, &c->resp.body);
	if (err != AC_OK)
		ac_resp_repo_error(c, err, args[0]);
	else if (!found)
		ac_resp_message_missing(c, message_id);
out:
	json_object_put(body);
	ac_verrs_free(&v);
}
