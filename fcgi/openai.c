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
#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "chat_impl.h"
#include "handlers.h"
#include "loop.h"
#include "openai_impl.h"


#define STORE_TRIES 4

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
	free(o->limit_user);
	free(o);
}

/* The user's generation slot back, with the provider's tokens it used (once). */
static void
limits_end(struct oai *o, int64_t tokens)
{
	if (!o->admitted)
		return;
	o->admitted = false;
	ac_send_release(o->c, (struct ac_str){ o->limit_user, o->limit_user_len }, o->slot, tokens);
}

/* Admitted by the user's limits (as POST /chat is), or answered 429 (or 503) in OpenAI's shape. */
static bool
limits_admit(struct oai *o, struct ac_str user)
{
	struct ac_ctx *c = o->c;
	int64_t until = ac_now_us() + ((int64_t)c->cfg->provider_timeout_s + 10) * 1000000;

	if (!ac_send_admit(c, user, until, &o->slot)) {
		ac_oai_reshape(c);
		return false;
	}
	if (o->slot <= 0 && !ac_limits_on(&c->cfg->limits))
		return true;
	o->limit_user = malloc(user.len + 1);
	if (o->limit_user == NULL) {
		ac_send_release(c, user, o->slot, 0);
		ac_oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
		return false;
	}
	memcpy(o->limit_user, user.ptr, user.len);
	o->limit_user[user.len] = '\0';
	o->limit_user_len = user.len;
	o->admitted = true;
	return true;
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

void
ac_oai_error(struct ac_ctx *c, int status, const char *type, const char *param, const char *code, const char *message)
{
	if (c->resp.committed) {
		c->resp.failed = true;
		c->resp.abort = true;
		return;
	}
	ac_resp_start(c, status);
	error_object(&c->resp.body, type, param, code, message);
}

void
ac_oai_invalid(struct ac_ctx *c, const char *param, const char *message)
{
	ac_oai_error(c, 400, "invalid_request_error", param, NULL, message);
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
ac_v1_refused(struct ac_ctx *c)
{
	ac_oai_reshape(c);
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
	ac_oai_error(c, status, type, NULL, code, message);
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
	limits_end(o, res->prompt_tokens + res->completion_tokens);
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
		ac_oai_invalid(c, "X-Chat-Id", "X-Chat-Id must be a chat's id");
		return false;
	}
	if (!user_ok) {
		ac_oai_invalid(c, "user_id", "X-Chat-Id stores into one of the user's chats: name the user");
		return false;
	}
	while (i > 0 && msgs[i - 1].role != AC_LLM_USER)
		i--;
	if (i == 0) {
		ac_oai_invalid(c, "messages", "X-Chat-Id stores the last user message: there is none");
		return false;
	}
	o->owned = malloc(len + user.len + 1);
	if (o->owned == NULL) {
		ac_oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
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
		ac_oai_error(c, 404, "invalid_request_error", "X-Chat-Id", "chat_not_found",
		    "The chat of X-Chat-Id does not exist or is not the user's");
		return false;
	}
	if (err != AC_OK) {
		ac_oai_error(c, 503, "api_error", NULL, NULL, "Database unavailable: the exchange could not be stored");
		ac_resp_header(c, "Retry-After", "1");
		return false;
	}
	if (o->state.state != AC_SEND_NEW && o->state.state != AC_SEND_RETRY) {
		ac_oai_error(c, 409, "invalid_request_error", "X-Chat-Id", NULL, "The chat is busy with another send");
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
		ac_oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
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
		ac_oai_reshape(c);
		goto out;
	}
	if (!ac_request_object(c, &v, true, &body)) {
		ac_oai_reshape(c);
		goto out;
	}
	if (v.count > 0 || body == NULL) {
		ac_oai_invalid(c, NULL, "We could not parse the JSON body of your request: send a JSON object");
		goto out;
	}
	json_object_object_foreach(body, key, val) {
		if (!ac_oai_read_member(o, key, val, &messages))
			goto out;
	}
	if (o->model == NULL) {
		ac_oai_invalid(c, "model", "model is required");
		goto out;
	}
	if (messages == NULL) {
		ac_oai_invalid(c, "messages", "messages is required");
		goto out;
	}
	if (ac_buf_err(&o->extra) != AC_OK) {
		ac_oai_invalid(c, NULL, "the request is too large");
		goto out;
	}
	o->opts.extra = o->extra.data;
	o->opts.extra_len = o->extra.len;
	msgs = ac_oai_read_messages(c, messages, &n, &parts);
	if (msgs == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		tokens += ac_send_estimate_tokens(msgs[i].content.len);
	room = o->model->context_window - (o->opts.max_tokens > 0 ? o->opts.max_tokens : o->model->max_completion_tokens);
	if (tokens > room) {
		char msg[200];

		snprintf(msg, sizeof(msg), "This model's context holds about %lld tokens of messages; these are about %lld",
		    (long long)room, (long long)tokens);
		ac_oai_error(c, 400, "invalid_request_error", "messages", "context_length_exceeded", msg);
		goto out;
	}
	if (c->cfg->api_key[0] == '\0') {
		ac_oai_error(c, 503, "api_error", NULL, "no_api_key", "GROQ_API_KEY is not set");
		goto out;
	}
	if (user_ok && !limits_admit(o, user))
		goto out;
	if (chat_header != NULL && !begin_store(o, chat_header, user_ok, user, msgs, n))
		goto out;
	call(o, msgs, n);
out:
	free(msgs);
	ac_buf_free(&parts);
	json_object_put(body);
	ac_verrs_free(&v);
	ac_verrs_free(&uv);
	if (o != NULL && !c->parked) {
		limits_end(o, 0);	/* refused before the call (a finished call gave its slot back) */
		oai_free(o);
	}
}
