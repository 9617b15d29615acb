/*
 * OpenAI-compatible routes: GET /v1/models and POST /v1/chat/completions, so that the `openai` SDKs,
 * LangChain, Open WebUI and editors' assistants talk to the model through us (our registry, retries,
 * timeouts, request ids, metrics and token accounting; accounts and limits where the rest of the API
 * has them).
 *
 * A completion is the provider call of POST /chat without our chat around it: the client's messages
 * go as they are (no SYSTEM_PROMPT, no history), with the settings it gave over the model's.  The call
 * runs like POST /chat's: parked on the event loop (loop.h) when it can be, so that a waiting
 * completion holds no thread; the thread makes it only under CGI, EVENT_LOOP=0, or a full loop.  A
 * stream's head waits for the first piece of the reply (or the first heartbeat): a provider failure
 * before it is answered with its own status (a 429 the SDK raises as RateLimitError), not in the
 * stream.  Answers are OpenAI's shapes, errors {"error": {"message", "type", "param", "code"}}.
 *
 * With X-Chat-Id naming one of the user's chats, the exchange is stored there like a POST /chat (the
 * last user message and the reply, or what came of it); without it nothing is stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "handlers.h"
#include "loop.h"

#define EVENT_KEEP (64 * 1024)
#define STORE_TRIES 4
#define TOKENS_PER_MESSAGE 8
#define STOP_MAX 4

/* Request members passed on to the provider as they are (Groq's; OpenAI's own). */
static const char *const passed_on[] = {
	"frequency_penalty", "presence_penalty", "seed", "response_format", "reasoning_effort",
	"reasoning_format", "include_reasoning", "service_tier", "metadata", "store", "logit_bias",
};
/* Members whose answer we could not pass back (tools, log probabilities, audio): a 400. */
static const char *const refused[] = {
	"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logprobs", "top_logprobs",
	"audio", "modalities", "prediction", "web_search_options",
};

struct oai {
	struct ac_ctx *c;
	const struct ac_model *model;
	bool stream;
	bool include_usage;
	bool head_sent;			/* the stream's head went out */
	bool role_sent;			/* the first chunk (the role) went out */
	struct ac_buf head;		/* a parked stream's head, rendered before parking */
	struct ac_buf event;
	struct ac_buf extra;		/* opts.extra */
	struct ac_llm_opts opts;
	struct ac_llm_result res;
	struct ac_llm_hooks hooks;
	struct ac_provider *call;	/* a parked call's own */
	struct ac_park *park;
	char id[AC_REQUEST_ID_MAX + 16];	/* "chatcmpl-<request id>" */
	long long created;

	/* X-Chat-Id: the exchange is stored into the chat. */
	bool store;
	bool stored;
	char *owned;
	struct ac_str chat_id, user_id;
	struct ac_send state;
};

static void
oai_free(struct oai *o)
{
	if (o == NULL)
		return;
	ac_buf_free(&o->head);
	ac_buf_free(&o->event);
	ac_buf_free(&o->extra);
	ac_llm_result_free(&o->res);
	ac_provider_free(o->call);
	free(o->owned);
	free(o);
}

/* {"error": {...}} into b. */
static void
error_object(struct ac_buf *b, const char *type, const char *param, const char *code, const char *message)
{
	ac_buf_adds(b, "{\"error\":{\"message\":");
	ac_json_cstr(b, message);
	ac_buf_adds(b, ",\"type\":");
	ac_json_cstr(b, type);
	ac_buf_adds(b, ",\"param\":");
	if (param != NULL)
		ac_json_cstr(b, param);
	else
		ac_buf_adds(b, "null");
	ac_buf_adds(b, ",\"code\":");
	if (code != NULL)
		ac_json_cstr(b, code);
	else
		ac_buf_adds(b, "null");
	ac_buf_adds(b, "}}");
}

static void
oai_error(struct ac_ctx *c, int status, const char *type, const char *param, const char *code, const char *message)
{
	if (c->resp.committed) {
		c->resp.failed = true;
		c->resp.abort = true;
		return;
	}
	ac_resp_start(c, status);
	error_object(&c->resp.body, type, param, code, message);
}

static void
invalid(struct ac_ctx *c, const char *param, const char *message)
{
	oai_error(c, 400, "invalid_request_error", param, NULL, message);
}

/* The model by alias, else by the provider's id the registry lists. */
static const struct ac_model *
find_model(const struct ac_models *ms, struct ac_str name)
{
	const struct ac_model *m = ac_models_find(ms, name.ptr, name.len);

	for (int i = 0; m == NULL && i < ms->count; i++) {
		if (strlen(ms->m[i].id) == name.len && memcmp(ms->m[i].id, name.ptr, name.len) == 0)
			m = &ms->m[i];
	}
	return m;
}

static long long
started_at(void)
{
	static long long t;	/* the first answer's time: a registry is as old as the process */

	if (t == 0)
		t = (long long)time(NULL);
	return t;
}

static void
model_object(struct ac_buf *b, const char *id, const char *owner, size_t owner_len, bool first)
{
	if (!first)
		ac_buf_addc(b, ',');
	ac_buf_adds(b, "{\"id\":");
	ac_json_cstr(b, id);
	ac_buf_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":", started_at());
	ac_json_str(b, owner, owner_len);
	ac_buf_addc(b, '}');
}

void
ac_h_v1_models(struct ac_ctx *c, const struct ac_str *args)
{
	const struct ac_models *ms = &c->cfg->models;
	struct ac_buf *b = &c->resp.body;

	(void)args;
	ac_resp_start(c, 200);
	ac_buf_adds(b, "{\"object\":\"list\",\"data\":[");
	for (int i = 0; i < ms->count; i++)
		model_object(b, ms->m[i].alias, "ai-chat-fcgi", 12, i == 0);
	/* And the provider's ids they point at, once each ("openai/gpt-oss-20b" is owned by "openai"). */
	for (int i = 0; i < ms->count; i++) {
		const char *id = ms->m[i].id, *slash = strchr(id, '/');
		bool seen = ac_models_find(ms, id, strlen(id)) != NULL;

		for (int k = 0; k < i && !seen; k++)
			seen = strcmp(ms->m[k].id, id) == 0;
		if (!seen)
			model_object(b, id, slash != NULL ? id : "provider", slash != NULL ? (size_t)(slash - id) : 8, false);
	}
	ac_buf_adds(b, "]}");
}

/* ---- the answer ---- */

/* A chunk's opening, up to "choices": */
static void
chunk_begin(struct oai *o)
{
	struct ac_buf *b = &o->event;

	ac_buf_reset(b, EVENT_KEEP);
	ac_buf_adds(b, "{\"id\":");
	ac_json_cstr(b, o->id);
	ac_buf_printf(b, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":", o->created);
	ac_json_cstr(b, o->model->id);
	ac_buf_adds(b, ",\"choices\":");
}

/* The stream's head, once: queued on the loop while parked, else written by this thread. */
static enum ac_err
head(struct oai *o)
{
	if (o->head_sent)
		return AC_OK;
	o->head_sent = true;
	if (o->park != NULL)
		return ac_park_write(o->park, o->head.data, o->head.len);
	ac_resp_sse_begin(o->c);
	return o->c->resp.failed ? AC_EIO : AC_OK;
}

/* One unnamed event ("data: ..."), the head first. */
static enum ac_err
emit(struct oai *o, const char *data, size_t len)
{
	enum ac_err err = head(o);

	if (err != AC_OK)
		return err;
	if (o->park != NULL)
		return ac_park_sse(o->park, "", data, len);
	return ac_resp_sse_event(o->c, "", data, len);
}

static enum ac_err
emit_event(struct oai *o)
{
	if (ac_buf_err(&o->event) != AC_OK)
		return ac_buf_err(&o->event);
	return emit(o, o->event.data, o->event.len);
}

/* The first chunk: the role. */
static enum ac_err
role_chunk(struct oai *o)
{
	if (o->role_sent)
		return AC_OK;
	o->role_sent = true;
	chunk_begin(o);
	ac_buf_adds(&o->event, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}");
	return emit_event(o);
}

static enum ac_err
on_delta(void *arg, const char *text, size_t len)
{
	struct oai *o = arg;
	enum ac_err err = role_chunk(o);

	if (err != AC_OK)
		return err;
	chunk_begin(o);
	ac_buf_adds(&o->event, "[{\"index\":0,\"delta\":{\"content\":");
	ac_json_str(&o->event, text, len);
	ac_buf_adds(&o->event, "},\"finish_reason\":null}]}");
	return emit_event(o);
}

/* SSE_HEARTBEAT_S with nothing sent: the head goes out (a failure after it is told in the stream). */
static enum ac_err
on_idle(void *arg)
{
	struct oai *o = arg;
	enum ac_err err = head(o);

	if (err != AC_OK)
		return err;
	if (o->park != NULL)
		return ac_park_sse(o->park, NULL, "ping", 4);
	return ac_resp_sse_comment(o->c, "ping");
}

static void
usage_object(struct ac_buf *b, const struct ac_llm_result *res)
{
	ac_buf_printf(b, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
	    (long long)res->prompt_tokens, (long long)res->completion_tokens,
	    (long long)(res->prompt_tokens + res->completion_tokens));
}

/* The exchange into the chat (X-Chat-Id), trying again while the database is busy. */
static void
store(struct oai *o)
{
	static const useconds_t waits[STORE_TRIES - 1] = { 50000, 200000, 500000 };
	struct ac_llm_result *res = &o->res;
	struct ac_reply reply;
	int64_t id, created;
	enum ac_err err = AC_OK;

	if (!o->store || o->stored)
		return;
	o->stored = true;
	memset(&reply, 0, sizeof(reply));
	reply.content.ptr = res->text.data != NULL ? res->text.data : "";
	reply.content.len = res->text.len;
	reply.model.ptr = res->model[0] != '\0' ? res->model : o->model->id;
	reply.model.len = strlen(reply.model.ptr);
	reply.prompt_tokens = res->prompt_tokens;
	reply.completion_tokens = res->completion_tokens;
	if (res->fail == AC_LLM_OK)
		reply.outcome = AC_REPLY_COMPLETE;
	else
		reply.outcome = res->text.len > 0 ? AC_REPLY_INCOMPLETE : AC_REPLY_FAILED;
	for (int i = 0; i < STORE_TRIES; i++) {
		err = ac_repo_send_finish(o->c->repo, o->chat_id, &o->state, &reply, &id, &created);
		if (err != AC_EBUSY && err != AC_EDB)
			break;
		if (i + 1 < STORE_TRIES)
			usleep(waits[i]);
	}
	if (err != AC_OK && err != AC_ENOTFOUND)
		ac_log(AC_LOG_ERROR, "a completion for chat %.*s could not be stored (%s): it counts as failed once "
		    "its lock runs out", (int)o->chat_id.len, o->chat_id.ptr, ac_strerror(err));
}

/* A failed call, answered with its status; or in the stream once its head has gone. */
static void
fail(struct oai *o)
{
	struct ac_ctx *c = o->c;
	struct ac_llm_result *res = &o->res;
	int status = 503;
	const char *type = "api_error", *code = "provider_unavailable";
	char message[640];

	snprintf(message, sizeof(message), "Failed to get AI response: %s", res->detail);
	switch (res->fail) {
	case AC_LLM_RATE_LIMITED:
		status = 429;
		type = "rate_limit_error";
		code = "rate_limit_exceeded";
		break;
	case AC_LLM_MODEL_UNAVAILABLE:
		status = 404;
		type = "invalid_request_error";
		code = "model_not_found";
		break;
	case AC_LLM_REJECTED:
		status = 400;
		type = "invalid_request_error";
		code = NULL;
		break;
	case AC_LLM_NO_KEY:
		snprintf(message, sizeof(message), "%s", res->detail);
		break;
	default:
		break;
	}
	if (o->head_sent) {
		/* The SDKs raise a mid-stream {"error": ...} event; no [DONE] after it. */
		ac_buf_reset(&o->event, EVENT_KEEP);
		error_object(&o->event, type, NULL, code, message);
		if (ac_buf_err(&o->event) == AC_OK)
			(void)ac_resp_sse_event(c, "", o->event.data, o->event.len);
		return;
	}
	oai_error(c, status, type, NULL, code, message);
	if (res->retry_after >= 0 && (status == 429 || status == 503)) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%d", res->retry_after);
		ac_resp_header(c, "Retry-After", ra);
	}
}

/* The call is over: the exchange stored (X-Chat-Id), then the answer or the rest of the stream. */
static void
finish(struct oai *o)
{
	struct ac_ctx *c = o->c;
	struct ac_llm_result *res = &o->res;
	const char *reason = res->finish_reason[0] != '\0' ? res->finish_reason : "stop";
	struct ac_buf *b;

	c->log.model = o->model->id;
	c->log.prompt_tokens = res->prompt_tokens;
	c->log.completion_tokens = res->completion_tokens;
	store(o);
	/* A parked stream's head went out from the loop: this answer is that stream's rest. */
	if (o->head_sent && !c->resp.committed)
		ac_resp_resume(c, true, c->resp.failed);
	if (res->fail != AC_LLM_OK) {
		if (res->fail == AC_LLM_CANCELLED && c->resp.failed)
			return;	/* nobody to tell */
		fail(o);
		return;
	}
	if (!o->stream) {
		b = &c->resp.body;
		ac_resp_start(c, 200);
		ac_buf_adds(b, "{\"id\":");
		ac_json_cstr(b, o->id);
		ac_buf_printf(b, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", o->created);
		ac_json_cstr(b, o->model->id);
		ac_buf_adds(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
		ac_json_str(b, res->text.data != NULL ? res->text.data : "", res->text.len);
		ac_buf_adds(b, "},\"finish_reason\":");
		ac_json_cstr(b, reason);
		ac_buf_adds(b, "}],");
		usage_object(b, res);
		ac_buf_addc(b, '}');
		return;
	}
	o->park = NULL;	/* from here this thread writes, through c (queued for the loop when parked) */
	if (role_chunk(o) != AC_OK)
		return;
	chunk_begin(o);
	ac_buf_adds(&o->event, "[{\"index\":0,\"delta\":{},\"finish_reason\":");
	ac_json_cstr(&o->event, reason);
	ac_buf_adds(&o->event, "}]}");
	if (emit_event(o) != AC_OK)
		return;
	if (o->include_usage) {
		chunk_begin(o);
		ac_buf_adds(&o->event, "[],");
		usage_object(&o->event, res);
		ac_buf_addc(&o->event, '}');
		if (emit_event(o) != AC_OK)
			return;
	}
	(void)emit(o, "[DONE]", 6);
}

static void
parked_finish(struct ac_ctx *c, void *arg)
{
	struct oai *o = arg;

	o->c = c;
	finish(o);
}

static void
parked_release(void *arg)
{
	oai_free(arg);
}

static const struct ac_park_ops park_ops = { parked_finish, parked_release };

/* Makes the call (parked on the loop when it can be) and finishes it, now or later. */
static void
call(struct oai *o, const struct ac_llm_msg *msgs, size_t n)
{
	struct ac_ctx *c = o->c;
	const struct ac_llm_hooks *hooks = o->stream ? &o->hooks : NULL;

	o->hooks.delta = on_delta;
	o->hooks.idle = on_idle;
	o->hooks.arg = o;
	if (!c->cgi && c->cfg->event_loop && !c->resp.failed && ac_provider_new(c->cfg, &o->call) == AC_OK) {
		if (o->stream)
			ac_resp_sse_head(c, &o->head);
		ac_provider_set_opts(o->call, &o->opts);
		if (ac_provider_begin(o->call, o->model, msgs, n, o->stream, hooks, &o->res)) {
			if (ac_buf_err(&o->head) == AC_OK && ac_park(c, o->call, &park_ops, o, &o->park))
				return;	/* the loop's now: not to be touched here */
			ac_provider_run(o->call);
		}
		finish(o);
		return;
	}
	ac_provider_set_opts(c->provider, &o->opts);
	ac_provider_chat(c->provider, o->model, msgs, n, o->stream, hooks, &o->res);
	finish(o);
}

/* ---- the request ---- */

/* The messages: [{role, content}], content a string or text parts (joined into parts); NULL once
 * answered (a 400). */
static struct ac_llm_msg *
read_messages(struct ac_ctx *c, struct json_object *arr, size_t *count, struct ac_buf *parts)
{
	size_t n = json_object_array_length(arr);
	struct ac_llm_msg *msgs;
	size_t *at;	/* where a message's joined parts start in parts; SIZE_MAX: a string */
	char param[64];

	if (n == 0) {
		invalid(c, "messages", "messages must hold at least one message");
		return NULL;
	}
	msgs = calloc(n, sizeof(*msgs));
	at = calloc(n, sizeof(*at));
	if (msgs == NULL || at == NULL) {
		free(msgs);
		free(at);
		oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(arr, i), *role, *content;
		const char *r;

		at[i] = SIZE_MAX;
		snprintf(param, sizeof(param), "messages[%zu]", i);
		if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "role", &role) ||
		    !json_object_is_type(role, json_type_string)) {
			invalid(c, param, "each message must be an object with a role");
			goto bad;
		}
		r = json_object_get_string(role);
		if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
			msgs[i].role = AC_LLM_SYSTEM;
		} else if (strcmp(r, "user") == 0) {
			msgs[i].role = AC_LLM_USER;
		} else if (strcmp(r, "assistant") == 0) {
			msgs[i].role = AC_LLM_ASSISTANT;
		} else {
			snprintf(param, sizeof(param), "messages[%zu].role", i);
			invalid(c, param, "the role must be system, developer, user or assistant (tools are not supported)");
			goto bad;
		}
		snprintf(param, sizeof(param), "messages[%zu].content", i);
		if (!json_object_object_get_ex(m, "content", &content) || content == NULL) {
			msgs[i].content = AC_STR("");
			if (msgs[i].role != AC_LLM_ASSISTANT) {
				invalid(c, param, "the message has no content");
				goto bad;
			}
		} else if (json_object_is_type(content, json_type_string)) {
			msgs[i].content = ac_json_get_str(content);
		} else if (json_object_is_type(content, json_type_array)) {
			at[i] = parts->len;
			for (size_t k = 0; k < json_object_array_length(content); k++) {
				struct json_object *part = json_object_array_get_idx(content, k), *type, *text;

				if (!json_object_object_get_ex(part, "type", &type) || !json_object_is_type(type, json_type_string) ||
				    strcmp(json_object_get_string(type), "text") != 0 ||
				    !json_object_object_get_ex(part, "text", &text) || !json_object_is_type(text, json_type_string)) {
					invalid(c, param, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
					goto bad;
				}
				ac_buf_add(parts, json_object_get_string(text), (size_t)json_object_get_string_len(text));
			}
			msgs[i].content.len = parts->len - at[i];
		} else {
			invalid(c, param, "the content must be a string or an array of text parts");
			goto bad;
		}
	}
	if (ac_buf_err(parts) != AC_OK) {
		invalid(c, "messages", "the messages are too large");
		goto bad;
	}
	/* parts is whole now: its pointers stay put. */
	for (size_t i = 0; i < n; i++) {
		if (at[i] != SIZE_MAX)
			msgs[i].content.ptr = parts->data != NULL ? parts->data + at[i] : "";
	}
	free(at);
	*count = n;
	return msgs;
bad:
	free(msgs);
	free(at);
	return NULL;
}

static bool
listed(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, list[i]) == 0)
			return true;
	return false;
}

static bool
is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int);
}

/* ,"key":<value as sent> into the provider's request. */
static void
pass_on(struct ac_buf *x, const char *key, struct json_object *v)
{
	ac_buf_addc(x, ',');
	ac_json_cstr(x, key);
	ac_buf_addc(x, ':');
	ac_buf_adds(x, v != NULL ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "null");
}

/* One member of the request; false once answered (a 400 or 404). */
static bool
read_member(struct oai *o, const char *key, struct json_object *v, struct json_object **messages)
{
	struct ac_ctx *c = o->c;
	char msg[200];

	if (strcmp(key, "model") == 0) {
		if (v == NULL || !json_object_is_type(v, json_type_string)) {
			invalid(c, "model", "model must be a string");
			return false;
		}
		o->model = find_model(&c->cfg->models, ac_json_get_str(v));
		if (o->model == NULL) {
			snprintf(msg, sizeof(msg), "The model '%.100s' does not exist (GET /v1/models lists them)",
			    json_object_get_string(v));
			oai_error(c, 404, "invalid_request_error", "model", "model_not_found", msg);
			return false;
		}
	} else if (strcmp(key, "messages") == 0) {
		if (v == NULL || !json_object_is_type(v, json_type_array)) {
			invalid(c, "messages", "messages must be an array of messages");
			return false;
		}
		*messages = v;
	} else if (strcmp(key, "stream") == 0) {
		if (v != NULL && !json_object_is_type(v, json_type_boolean)) {
			invalid(c, "stream", "stream must be a boolean");
			return false;
		}
		o->stream = v != NULL && json_object_get_boolean(v);
	} else if (strcmp(key, "stream_options") == 0) {
		struct json_object *u;

		if (v != NULL && !json_object_is_type(v, json_type_object)) {
			invalid(c, "stream_options", "stream_options must be an object");
			return false;
		}
		if (v != NULL && json_object_object_get_ex(v, "include_usage", &u)) {
			if (u != NULL && !json_object_is_type(u, json_type_boolean)) {
				invalid(c, "stream_options.include_usage", "include_usage must be a boolean");
				return false;
			}
			o->include_usage = u != NULL && json_object_get_boolean(u);
		}
	} else if (strcmp(key, "temperature") == 0) {
		if (v != NULL && (!is_number(v) || json_object_get_double(v) < 0 || json_object_get_double(v) > 2)) {
			invalid(c, "temperature", "temperature must be a number from 0 to 2");
			return false;
		}
		o->opts.has_temperature = v != NULL;
		o->opts.temperature = v != NULL ? json_object_get_double(v) : 0;
	} else if (strcmp(key, "top_p") == 0) {
		if (v != NULL && (!is_number(v) || json_object_get_double(v) < 0 || json_object_get_double(v) > 1)) {
			invalid(c, "top_p", "top_p must be a number from 0 to 1");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0) {
		if (v != NULL && (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)) {
			snprintf(msg, sizeof(msg), "%s must be a positive integer", key);
			invalid(c, key, msg);
			return false;
		}
		if (v != NULL)
			o->opts.max_tokens = json_object_get_int64(v);
	} else if (strcmp(key, "stop") == 0) {
		bool ok = v == NULL || json_object_is_type(v, json_type_string);

		if (v != NULL && json_object_is_type(v, json_type_array) && json_object_array_length(v) <= STOP_MAX) {
			ok = true;
			for (size_t i = 0; i < json_object_array_length(v); i++)
				ok = ok && json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
		}
		if (!ok) {
			invalid(c, "stop", "stop must be a string or an array of at most 4 strings");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "user") == 0) {
		if (v != NULL && !json_object_is_type(v, json_type_string)) {
			invalid(c, "user", "user must be a string");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "n") == 0) {
		if (v != NULL && (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)) {
			invalid(c, "n", "only n=1 is supported");
			return false;
		}
	} else if (listed(key, passed_on, sizeof(passed_on) / sizeof(passed_on[0]))) {
		pass_on(&o->extra, key, v);
		if (strcmp(key, "reasoning_effort") == 0)
			o->opts.own_reasoning_effort = true;
	} else if (listed(key, refused, sizeof(refused) / sizeof(refused[0]))) {
		snprintf(msg, sizeof(msg), "'%.60s' is not supported by this server", key);
		invalid(c, key, msg);
		return false;
	} else {
		snprintf(msg, sizeof(msg), "Unrecognized request argument supplied: %.60s", key);
		invalid(c, key, msg);
		return false;
	}
	return true;
}

/* An answer given in our {"detail"} shape (the body's checks, the user's), in OpenAI's instead. */
static void
reshape(struct ac_ctx *c)
{
	int status = c->resp.status;
	struct json_object *o = NULL, *d;
	struct ac_json_error jerr;
	char message[512] = "The request could not be read";
	const char *type = "invalid_request_error", *code = NULL;

	if (c->resp.committed)
		return;
	if (c->resp.body.len > 0 && ac_json_parse(c->resp.body.data, c->resp.body.len, &o, &jerr) == AC_OK &&
	    json_object_object_get_ex(o, "detail", &d) && json_object_is_type(d, json_type_string))
		snprintf(message, sizeof(message), "%s", json_object_get_string(d));
	json_object_put(o);
	if (status == 401) {
		type = "authentication_error";
		code = "invalid_api_key";
	} else if (status == 403) {
		type = "permission_error";
	} else if (status == 429) {
		type = "rate_limit_error";
		code = "rate_limit_exceeded";
	} else if (status >= 500) {
		type = "api_error";
	}
	oai_error(c, status, type, NULL, code, message);
}

static int64_t
estimate_tokens(size_t bytes)
{
	return (int64_t)(bytes / 2) + TOKENS_PER_MESSAGE;	/* as chat.c's: over, never under */
}

/* X-Chat-Id: the user's chat, into which the last user message is stored now (and the reply later). */
static bool
begin_store(struct oai *o, const char *chat_header, bool user_ok, struct ac_str user,
    const struct ac_llm_msg *msgs, size_t n)
{
	struct ac_ctx *c = o->c;
	size_t len = strlen(chat_header), i = n;
	enum ac_err err;
	int64_t until = ac_now_us() + ((int64_t)c->cfg->provider_timeout_s + 10) * 1000000;

	if (len == 0 || len > 64) {
		invalid(c, "X-Chat-Id", "X-Chat-Id must be a chat's id");
		return false;
	}
	if (!user_ok) {
		invalid(c, "user_id", "X-Chat-Id stores into one of the user's chats: name the user");
		return false;
	}
	while (i > 0 && msgs[i - 1].role != AC_LLM_USER)
		i--;
	if (i == 0) {
		invalid(c, "messages", "X-Chat-Id stores the last user message: there is none");
		return false;
	}
	o->owned = malloc(len + user.len + 1);
	if (o->owned == NULL) {
		oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
		return false;
	}
	memcpy(o->owned, chat_header, len);
	memcpy(o->owned + len, user.ptr, user.len);
	o->chat_id.ptr = o->owned;
	o->chat_id.len = len;
	o->user_id.ptr = o->owned + len;
	o->user_id.len = user.len;
	err = ac_repo_send_begin(c->repo, o->chat_id, o->user_id, msgs[i - 1].content, (struct ac_str){ NULL, 0 },
	    until, &o->state);
	if (err == AC_ENOTFOUND) {
		oai_error(c, 404, "invalid_request_error", "X-Chat-Id", "chat_not_found",
		    "The chat of X-Chat-Id does not exist or is not the user's");
		return false;
	}
	if (err != AC_OK) {
		oai_error(c, 503, "api_error", NULL, NULL, "Database unavailable: the exchange could not be stored");
		ac_resp_header(c, "Retry-After", "1");
		return false;
	}
	if (o->state.state != AC_SEND_NEW && o->state.state != AC_SEND_RETRY) {
		oai_error(c, 409, "invalid_request_error", "X-Chat-Id", NULL, "The chat is busy with another send");
		return false;
	}
	o->store = true;
	return true;
}

void
ac_h_v1_chat_completions(struct ac_ctx *c, const struct ac_str *args)
{
	struct oai *o = calloc(1, sizeof(*o));
	struct ac_verrs v, uv;
	struct json_object *body = NULL, *messages = NULL;
	struct ac_llm_msg *msgs = NULL;
	struct ac_buf parts;
	struct ac_str user = { NULL, 0 };
	const char *chat_header = FCGX_GetParam("HTTP_X_CHAT_ID", c->envp);
	bool user_ok;
	size_t n = 0;
	int64_t tokens = 0, room;

	(void)args;
	ac_verrs_init(&v);
	ac_verrs_init(&uv);
	ac_buf_init(&parts, c->cfg->max_body + 16);
	if (o == NULL) {
		oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
		goto out;
	}
	o->c = c;
	ac_buf_init(&o->head, 16384);
	ac_buf_init(&o->event, 6 * c->cfg->provider_max_response + 4096);
	ac_buf_init(&o->extra, c->cfg->max_body + 16);
	ac_llm_result_init(&o->res, c->cfg->provider_max_response);
	snprintf(o->id, sizeof(o->id), "chatcmpl-%s", c->log.request_id);
	o->created = (long long)time(NULL);
	/* The user: whatever the rest of the API takes it from (ac_request_user).  Needed to store
	 * (X-Chat-Id); an answer it gave itself (a refused credential) stands. */
	user_ok = ac_request_user(c, &uv, NULL, &user);
	if (!user_ok && c->resp.body.len > 0) {
		reshape(c);
		goto out;
	}
	if (!ac_request_object(c, &v, true, &body)) {
		reshape(c);
		goto out;
	}
	if (v.count > 0 || body == NULL) {
		invalid(c, NULL, "We could not parse the JSON body of your request: send a JSON object");
		goto out;
	}
	json_object_object_foreach(body, key, val) {
		if (!read_member(o, key, val, &messages))
			goto out;
	}
	if (o->model == NULL) {
		invalid(c, "model", "model is required");
		goto out;
	}
	if (messages == NULL) {
		invalid(c, "messages", "messages is required");
		goto out;
	}
	if (ac_buf_err(&o->extra) != AC_OK) {
		invalid(c, NULL, "the request is too large");
		goto out;
	}
	o->opts.extra = o->extra.data;
	o->opts.extra_len = o->extra.len;
	msgs = read_messages(c, messages, &n, &parts);
	if (msgs == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		tokens += estimate_tokens(msgs[i].content.len);
	room = o->model->context_window - (o->opts.max_tokens > 0 ? o->opts.max_tokens : o->model->max_completion_tokens);
	if (tokens > room) {
		char msg[200];

		snprintf(msg, sizeof(msg), "This model's context holds about %lld tokens of messages; these are about %lld",
		    (long long)room, (long long)tokens);
		oai_error(c, 400, "invalid_request_error", "messages", "context_length_exceeded", msg);
		goto out;
	}
	if (c->cfg->api_key[0] == '\0') {
		oai_error(c, 503, "api_error", NULL, "no_api_key", "GROQ_API_KEY is not set");
		goto out;
	}
	if (chat_header != NULL && !begin_store(o, chat_header, user_ok, user, msgs, n))
		goto out;
	call(o, msgs, n);
out:
	free(msgs);
	ac_buf_free(&parts);
	json_object_put(body);
	ac_verrs_free(&v);
	ac_verrs_free(&uv);
	if (!c->parked)
		oai_free(o);
}
