/*
 * The routes that talk to the model: POST /chat, POST /chats/{id}/regenerate,
 * POST /chats/{id}/messages/{id}/edit (each validates its request, begins its send in the repository
 * and hands it to chat.c), and GET /models.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "chat_impl.h"
#include "handlers.h"
#include "server.h"

#define IDEMPOTENCY_KEY_MAX 255

static const struct ac_strspec chat_id_spec = { "chat_id", true, false, 1, 64 };
/* With accounts, a send without a chat_id starts a new chat (the original project's later API). */
static const struct ac_strspec chat_id_optional_spec = { "chat_id", false, true, 1, 64 };
static const struct ac_strspec message_spec = { "message", true, false, 1, SIZE_MAX };

void
ac_models_invalid(struct ac_verrs *v, const struct ac_models *ms)
{
	char msg[512];
	size_t k = 0;

	k += (size_t)snprintf(msg, sizeof(msg), "value is not a valid enumeration member; permitted: ");
	for (int i = 0; i < ms->count && k < sizeof(msg); i++)
		k += (size_t)snprintf(msg + k, sizeof(msg) - k, "%s'%s'", i > 0 ? ", " : "", ms->m[i].alias);
	ac_verrs_add(v, "body", "model", msg, "type_error.enum", false, 0);
}

static enum ac_err
settings_out(void *arg, const struct ac_chat *chat)
{
	struct send *s = arg;

	if (chat->system_prompt.ptr != NULL) {
		s->prompt_owned = malloc(chat->system_prompt.len + 1);
		if (s->prompt_owned == NULL)
			return AC_ENOMEM;
		memcpy(s->prompt_owned, chat->system_prompt.ptr, chat->system_prompt.len);
		s->prompt_owned[chat->system_prompt.len] = '\0';
		s->prompt.ptr = s->prompt_owned;
		s->prompt.len = chat->system_prompt.len;
	}
	if (!s->model_named && chat->model.ptr != NULL) {
		const struct ac_model *m = ac_models_find(&s->c->cfg->models, chat->model.ptr, chat->model.len);

		if (m != NULL)	/* an alias since taken out of the registry: the default */
			s->model = m;
	}
	return AC_OK;
}

/*
 * The chat's settings (PATCH /chats/{id}): its system prompt, and its model for a send that names
 * none.  false when answered (404: not the user's chat; 503).
 */
static bool
chat_settings(struct send *s)
{
	enum ac_err err;

	err = ac_repo_chat_get(s->c->repo, s->chat_id, s->user_id, settings_out, s);
	if (err != AC_OK) {
		ac_resp_repo_error(s->c, err, s->chat_id);
		return false;
	}
	return true;
}

/* A path's chat id that is no UUID names no chat: 404 without a lookup. */
static bool
chat_id_uuid(struct send *s)
{
	if (ac_uuid_valid(s->chat_id.ptr, s->chat_id.len))
		return true;
	ac_resp_repo_error(s->c, AC_ENOTFOUND, s->chat_id);
	return false;
}

static bool
wants_stream(struct ac_ctx *c)
{
	return c->req.accept != NULL && strstr(c->req.accept, "text/event-stream") != NULL;
}

/* The "model" and "stream" members shared by POST /chat and regenerate. */
static void
model_and_stream(struct send *s, struct ac_verrs *v, struct json_object *body)
{
	const struct ac_models *ms = &s->c->cfg->models;
	struct json_object *m;

	s->model = &ms->m[0];
	s->stream = wants_stream(s->c);
	if (body == NULL)
		return;
	if (json_object_object_get_ex(body, "model", &m)) {
		struct ac_str alias;

		if (m == NULL) {
			ac_verrs_add(v, "body", "model", "none is not an allowed value", "type_error.none.not_allowed",
			    false, 0);
		} else if (!json_object_is_type(m, json_type_string)) {
			ac_verrs_add(v, "body", "model", "str type expected", "type_error.str", false, 0);
		} else {
			alias = ac_json_get_str(m);
			s->model = ac_models_find(ms, alias.ptr, alias.len);
			s->model_named = true;
			if (s->model == NULL)
				ac_models_invalid(v, ms);
		}
	}
	if (json_object_object_get_ex(body, "stream", &m)) {
		if (m == NULL)
			ac_verrs_add(v, "body", "stream", "none is not an allowed value", "type_error.none.not_allowed",
			    false, 0);
		else if (!json_object_is_type(m, json_type_boolean))
			ac_verrs_add(v, "body", "stream", "value could not be parsed to a boolean", "type_error.bool",
			    false, 0);
		else
			s->stream = s->stream || json_object_get_boolean(m);
	}
}

static enum ac_err
new_chat(void *arg, const struct ac_chat *chat)
{
	struct send *s = arg;

	if (chat->id.len != AC_UUID_LEN)
		return AC_EDB;
	memcpy(s->new_chat_id, chat->id.ptr, AC_UUID_LEN);
	s->new_chat_id[AC_UUID_LEN] = '\0';
	s->chat_id = (struct ac_str){ s->new_chat_id, AC_UUID_LEN };
	return AC_OK;
}

static int64_t
lock_until(const struct ac_config *cfg)
{
	/* PROVIDER_TIMEOUT_S bounds the whole call, every try and wait included; and a margin. */
	return ac_now_us() + ((int64_t)cfg->provider_timeout_s + 10) * 1000000;
}

/* What every send checks before it reads the database: the request's own errors, then the key. */
static bool
request_ok(struct send *s, struct ac_verrs *v)
{
	if (v->count > 0) {
		ac_resp_invalid(s->c, v);
		return false;
	}
	if (s->c->cfg->api_key[0] == '\0') {
		ac_resp_error(s->c, 503, "GROQ_API_KEY is not set");
		return false;
	}
	return true;
}

/* Admitted by the user's limits (its slot then given back at the send's end), or answered 429. */
static bool
admit(struct send *s)
{
	if (!ac_send_admit(s->c, s->user_id, lock_until(s->c->cfg), &s->slot))
		return false;
	s->admitted = true;
	return true;
}

/* A route's end: a send not parked on the loop is over here (its slot back if the model was never
 * called); a parked one is the loop's, not to be touched (c says which). */
static void
route_end(struct ac_ctx *c, struct send *s, struct json_object *body, struct ac_verrs *v)
{
	json_object_put(body);
	ac_verrs_free(v);
	if (!c->parked) {
		ac_send_limits_end(s, 0);
		ac_send_free(s);
	}
}

void
ac_h_chat_send(struct ac_ctx *c, const struct ac_str *args)
{
	struct send *s;
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str message = { NULL, 0 };
	bool present;
	enum ac_err err;

	(void)args;
	s = ac_send_new(c);
	if (s == NULL)
		return;
	ac_verrs_init(&v);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		present = true;
		ac_valid_body_str(&v, body, c->cfg->auth_mode == AC_AUTH_NONE ? &chat_id_spec : &chat_id_optional_spec,
		    &s->chat_id, &present);
		if (!present)
			s->chat_id.ptr = NULL;
		ac_request_user(c, &v, body, &s->user_id);
		ac_valid_body_str(&v, body, &message_spec, &message, &present);
		model_and_stream(s, &v, body);
	}
	if (c->req.idempotency_key != NULL) {
		struct ac_str key = { c->req.idempotency_key, strlen(c->req.idempotency_key) };
		static const struct ac_strspec key_spec = { "idempotency-key", true, false, 1, IDEMPOTENCY_KEY_MAX };

		if (ac_valid_str(&v, "header", &key_spec, &key, &s->idem_key) == false)
			s->idem_key.ptr = NULL;
	}
	if (!request_ok(s, &v))
		goto out;
	/* The chat's settings (a new chat has none); a message that cannot fit the model's context is
	 * refused before it is stored. */
	if (s->chat_id.ptr != NULL && !chat_settings(s))
		goto out;
	if (ac_send_estimate_tokens(message.len) > ac_send_history_budget(s)) {
		ac_send_too_long(s, ac_send_estimate_tokens(message.len));
		goto out;
	}
	if (!admit(s))
		goto out;
	s->titles = true;
	if (s->chat_id.ptr == NULL) {
		err = ac_repo_chat_create(c->repo, s->user_id, (struct ac_str){ NULL, 0 }, new_chat, s);
		if (err != AC_OK) {
			ac_resp_repo_error(c, err, AC_STR(""));
			goto out;
		}
	}
	err = ac_repo_send_begin(c->repo, s->chat_id, s->user_id, message, s->idem_key, lock_until(c->cfg),
	    &s->state);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, s->chat_id);
		goto out;
	}
	ac_send_proceed(s, &v);
out:
	route_end(c, s, body, &v);
}

void
ac_h_chat_regenerate(struct ac_ctx *c, const struct ac_str *args)
{
	struct send *s;
	struct ac_verrs v;
	struct json_object *body = NULL;
	enum ac_err err;

	s = ac_send_new(c);
	if (s == NULL)
		return;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &s->user_id);
	if (!ac_request_object(c, &v, false, &body))
		goto out;
	model_and_stream(s, &v, body);
	s->chat_id = args[0];
	if (!request_ok(s, &v))
		goto out;
	if (!chat_id_uuid(s) || !chat_settings(s))
		goto out;
	if (!admit(s))
		goto out;
	err = ac_repo_regenerate_begin(c->repo, s->chat_id, s->user_id, lock_until(c->cfg), &s->state);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, s->chat_id);
		goto out;
	}
	ac_send_proceed(s, &v);
out:
	route_end(c, s, body, &v);
}

void
ac_h_models(struct ac_ctx *c, const struct ac_str *args)
{
	const struct ac_models *ms = &c->cfg->models;
	struct ac_buf *b = &c->resp.body;

	(void)args;
	ac_resp_start(c, 200);
	ac_buf_adds(b, "{\"default\":");
	ac_json_cstr(b, ms->m[0].alias);
	ac_buf_adds(b, ",\"models\":[");
	for (int i = 0; i < ms->count; i++) {
		const struct ac_model *m = &ms->m[i];

		if (i > 0)
			ac_buf_addc(b, ',');
		ac_buf_adds(b, "{\"alias\":");
		ac_json_cstr(b, m->alias);
		ac_buf_adds(b, ",\"model\":");
		ac_json_cstr(b, m->id);
		ac_buf_printf(b, ",\"temperature\":%.3g,\"max_completion_tokens\":%lld,\"context_window\":%lld,"
		    "\"reasoning_effort\":", m->temperature, (long long)m->max_completion_tokens,
		    (long long)m->context_window);
		if (m->reasoning_effort[0] != '\0')
			ac_json_cstr(b, m->reasoning_effort);
		else
			ac_buf_adds(b, "null");
		ac_buf_addc(b, '}');
	}
	ac_buf_adds(b, "]}");
}

void
ac_h_message_edit(struct ac_ctx *c, const struct ac_str *args)
{
	static const struct ac_strspec content_spec = { "content", true, false, 1, SIZE_MAX };
	struct send *s;
	struct ac_verrs v;
	struct json_object *body = NULL;
	struct ac_str content = { NULL, 0 };
	int64_t message_id = 0;
	bool present;
	enum ac_err err;

	s = ac_send_new(c);
	if (s == NULL)
		return;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &s->user_id);
	if (ac_parse_i64(args[1].ptr, args[1].len, 1, INT64_MAX, &message_id) != AC_OK)
		ac_verrs_add(&v, "path", "message_id", "value is not a valid integer", "type_error.integer", false, 0);
	if (!ac_request_object(c, &v, true, &body))
		goto out;
	if (body != NULL) {
		ac_valid_body_str(&v, body, &content_spec, &content, &present);
		model_and_stream(s, &v, body);
	}
	s->chat_id = args[0];
	if (!request_ok(s, &v))
		goto out;
	if (!chat_id_uuid(s) || !chat_settings(s))
		goto out;
	if (ac_send_estimate_tokens(content.len) > ac_send_history_budget(s)) {
		ac_send_too_long(s, ac_send_estimate_tokens(content.len));
		goto out;
	}
	if (!admit(s))
		goto out;
	err = ac_repo_edit_begin(c->repo, s->chat_id, s->user_id, message_id, content, lock_until(c->cfg),
	    &s->state);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, s->chat_id);
		goto out;
	}
	if (s->state.state == AC_SEND_NO_MESSAGE) {
		ac_resp_message_missing(c, message_id);
		goto out;
	}
	ac_send_proceed(s, &v);
out:
	route_end(c, s, body, &v);
}
