/*
 * Talking to the model: the send that POST /chat, POST /chats/{id}/regenerate and
 * POST /chats/{id}/messages/{id}/edit begin (their routes are in chat_routes.c).
 *
 * The request side of a send (the state machine itself is the repository's, common/repo.h): begin
 * (the user's message and a reply row, committed), the context from the newest messages of the path
 * that fit the model's budget, the provider called with no transaction open, then finish (the reply,
 * or what came of it, or the failure).  Every send that began is finished, on every path.  With
 * "stream": true the reply is forwarded as server-sent events while it arrives.
 *
 * Over FastCGI the call is parked on the event loop (loop.h) once the context is built: the thread
 * goes back to accept, the loop runs the call and forwards its pieces, and finish() runs later on
 * whichever pool thread takes it up.  A send is on the heap for that reason, and owns copies of the
 * request's strings it needs.  Under CGI (or with EVENT_LOOP=0, or the loop full) the thread makes
 * the call itself, as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "chat_impl.h"
#include "handlers.h"
#include "loop.h"
#include "server.h"

#define HISTORY_MAX_MESSAGES 10000	/* most messages of history sent, however small */
#define FINISH_TRIES 4			/* storing a reply: tries, with waits between, before a 503 */
#define DEFER_MAX_US (120LL * 1000000)	/* and then after the response, for this long */
#define TOKENS_PER_MESSAGE 8		/* role and framing, per message */
#define EVENT_KEEP (64 * 1024)		/* an SSE event's buffer shrinks back to this */


/*
 * A conservative estimate of a text's tokens: one per two bytes.  Tokenizers give about one per
 * four bytes of English and one per character of CJK (three bytes), so this over-counts, and the
 * context never overflows.
 */
int64_t
ac_send_estimate_tokens(size_t bytes)
{
	return (int64_t)(bytes / 2) + TOKENS_PER_MESSAGE;
}

/* The tokens of history a model's context holds: its window less the reply's share and the prompt. */
int64_t
ac_send_history_budget(const struct send *s)
{
	const struct ac_model *m = s->model;

	return m->context_window - m->max_completion_tokens - ac_send_estimate_tokens(s->prompt.len);
}

/* 413 for a message that alone does not fit. */
void
ac_send_too_long(struct send *s, int64_t tokens)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "Message too long for model '%s': about %lld tokens, and at most "
	    "%lld fit its context", s->model->alias, (long long)tokens, (long long)ac_send_history_budget(s));
	ac_resp_error(s->c, 413, detail);
}

/* The context's buffers, once the provider's request is built from them. */
static void
context_free(struct send *s)
{
	ac_buf_free(&s->text);
	free(s->offset);
	free(s->length);
	free(s->role);
	s->offset = s->length = NULL;
	s->role = NULL;
	s->count = s->cap = 0;
}

void
ac_send_free(struct send *s)
{
	if (s == NULL)
		return;
	context_free(s);
	ac_buf_free(&s->event);
	ac_llm_result_free(&s->res);
	ac_provider_free(s->call);
	free(s->owned);
	free(s->prompt_owned);
	free(s);
}

/* The admitted send's end, once: its generation slot given back, the provider's tokens counted. */
void
ac_send_limits_end(struct send *s, int64_t tokens)
{
	if (!s->admitted)
		return;
	s->admitted = false;
	ac_send_release(s->c, s->user_id, s->slot, tokens);
}

/* The request's strings the send still needs once the request's own memory is gone. */
static bool
own_strings(struct send *s)
{
	char *p = malloc(s->chat_id.len + s->user_id.len + 1);

	if (p == NULL)
		return false;
	memcpy(p, s->chat_id.ptr, s->chat_id.len);
	memcpy(p + s->chat_id.len, s->user_id.ptr, s->user_id.len);
	s->owned = p;
	s->chat_id.ptr = p;
	s->user_id.ptr = p + s->chat_id.len;
	s->idem_key.ptr = NULL;
	return true;
}

/* One event of the stream: queued on the loop while parked, else written by this thread. */
static enum ac_err
emit(struct send *s, const char *event, const char *data, size_t len)
{
	if (s->park != NULL)
		return ac_park_sse(s->park, event, data, len);
	if (event == NULL)
		return ac_resp_sse_comment(s->c, data);
	return ac_resp_sse_event(s->c, event, data, len);
}

/* ac_repo_history's callback: takes messages, newest first, while they fit. */
static enum ac_err
take_message(void *arg, const struct ac_message *m)
{
	struct send *s = arg;
	int64_t cost = ac_send_estimate_tokens(m->content.len);

	if (s->count == 0 && cost > s->budget) {
		s->too_large = true;
		s->too_large_tokens = cost;
		return AC_ETOOBIG;
	}
	if (s->used + cost > s->budget || s->count == HISTORY_MAX_MESSAGES)
		return AC_ETOOBIG;	/* enough: older messages do not fit */
	if (s->count == s->cap) {
		size_t cap = s->cap == 0 ? 64 : s->cap * 2;
		size_t *o = realloc(s->offset, cap * sizeof(*o));
		size_t *l = o != NULL ? realloc(s->length, cap * sizeof(*l)) : NULL;
		enum ac_llm_role *r = l != NULL ? realloc(s->role, cap * sizeof(*r)) : NULL;

		if (o != NULL)
			s->offset = o;
		if (l != NULL)
			s->length = l;
		if (r == NULL)
			return AC_ENOMEM;
		s->role = r;
		s->cap = cap;
	}
	s->offset[s->count] = s->text.len;
	s->length[s->count] = m->content.len;
	s->role[s->count] = m->role == AC_ROLE_ASSISTANT ? AC_LLM_ASSISTANT : AC_LLM_USER;
	ac_buf_add(&s->text, m->content.ptr, m->content.len);
	if (ac_buf_err(&s->text) != AC_OK)
		return ac_buf_err(&s->text);
	s->count++;
	s->used += cost;
	return AC_OK;
}

/* The messages for the provider: the system prompt, then the history oldest first. */
static struct ac_llm_msg *
context(struct send *s, size_t *n)
{
	struct ac_llm_msg *msgs = calloc(s->count + 1, sizeof(*msgs));

	if (msgs == NULL)
		return NULL;
	msgs[0].role = AC_LLM_SYSTEM;
	msgs[0].content = s->prompt;
	for (size_t i = 0; i < s->count; i++) {
		size_t k = s->count - 1 - i;

		msgs[i + 1].role = s->role[k];
		msgs[i + 1].content.ptr = s->text.data + s->offset[k];
		msgs[i + 1].content.len = s->length[k];
	}
	*n = s->count + 1;
	return msgs;
}

/* The reply object of POST /chat (also the data of the stream's "done" event). */
static void
write_reply(struct ac_buf *b, struct ac_str chat_id, struct ac_str reply, int64_t message_id,
    int64_t user_message_id, struct ac_str model, int64_t prompt_tokens, int64_t completion_tokens)
{
	ac_buf_adds(b, "{\"reply\":");
	ac_json_str(b, reply.ptr, reply.len);
	ac_buf_adds(b, ",\"chat_id\":");
	ac_json_str(b, chat_id.ptr, chat_id.len);
	ac_buf_adds(b, ",\"message_id\":");
	ac_buf_addi(b, message_id);
	ac_buf_adds(b, ",\"user_message_id\":");
	ac_buf_addi(b, user_message_id);
	ac_buf_adds(b, ",\"model\":");
	ac_json_str(b, model.ptr != NULL ? model.ptr : "", model.len);
	ac_buf_printf(b, ",\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}}",
	    (long long)prompt_tokens, (long long)completion_tokens,
	    (long long)(prompt_tokens + completion_tokens));
}

static enum ac_err
on_delta(void *arg, const char *text, size_t len)
{
	struct send *s = arg;

	ac_buf_reset(&s->event, EVENT_KEEP);
	ac_buf_adds(&s->event, "{\"content\":");
	ac_json_str(&s->event, text, len);
	ac_buf_addc(&s->event, '}');
	if (ac_buf_err(&s->event) != AC_OK)
		return ac_buf_err(&s->event);
	return emit(s, "delta", s->event.data, s->event.len);
}

/* REASONING=stream: the model's thinking, as "reasoning" events (never stored). */
static enum ac_err
on_reasoning(void *arg, const char *text, size_t len)
{
	struct send *s = arg;

	s->event.len = 0;
	ac_buf_adds(&s->event, "{\"content\":");
	ac_json_str(&s->event, text, len);
	ac_buf_addc(&s->event, '}');
	if (ac_buf_err(&s->event) != AC_OK)
		return ac_buf_err(&s->event);
	return emit(s, "reasoning", s->event.data, s->event.len);
}

static enum ac_err
on_idle(void *arg)
{
	struct send *s = arg;

	return s->stream ? emit(s, NULL, "ping", 4) : AC_OK;
}

/* An error: a JSON answer, or an "error" event once the stream has begun. */
static void
send_error(struct send *s, int status, const char *detail)
{
	struct ac_ctx *c = s->c;

	if (c->resp.committed) {
		ac_buf_reset(&s->event, EVENT_KEEP);
		ac_buf_adds(&s->event, "{\"detail\":");
		ac_json_cstr(&s->event, detail);
		ac_buf_addc(&s->event, '}');
		(void)ac_resp_sse_event(c, "error", s->event.data, s->event.len);
		return;
	}
	ac_resp_error(c, status, detail);
}

/* Answers with a reply stored earlier (an idempotent repeat). */
struct replay {
	struct send *s;
	bool found;
};

static enum ac_err
replay_message(void *arg, const struct ac_message *m)
{
	struct replay *rp = arg;
	struct send *s = rp->s;
	struct ac_ctx *c = s->c;
	struct ac_buf *b = s->stream ? &s->event : &c->resp.body;

	rp->found = true;
	if (s->stream) {
		/* The header before the head goes out. */
		ac_resp_header(c, "Idempotent-Replayed", "true");
		ac_resp_sse_begin(c);
		(void)on_delta(s, m->content.ptr, m->content.len);
		ac_buf_reset(b, EVENT_KEEP);
	}
	write_reply(b, s->chat_id, m->content, m->id, s->state.user_message_id, m->model, m->prompt_tokens,
	    m->completion_tokens);
	if (ac_buf_err(b) != AC_OK)
		return ac_buf_err(b);
	if (s->stream)
		(void)ac_resp_sse_event(c, "done", b->data, b->len);
	return AC_OK;
}

static void
replay(struct send *s)
{
	struct ac_ctx *c = s->c;
	struct replay rp = { s, false };
	enum ac_err err;

	if (!s->stream) {
		ac_resp_start(c, 200);
		ac_resp_header(c, "Idempotent-Replayed", "true");
	}
	err = ac_repo_message_get(c->repo, s->chat_id, s->state.reply_id, replay_message, &rp);
	if (err != AC_OK && !c->resp.committed)
		ac_resp_repo_error(c, err, s->chat_id);
}

/* A finish that could not be stored while the client waited, tried again after the answer has gone. */
struct deferred {
	struct ac_send state;
	struct ac_reply reply;
	int64_t until;		/* on the monotonic clock */
	size_t chat_id_len;
	char *model;
	char *content;
	char chat_id[];
};

static void
deferred_settle(struct ac_ctx *c, void *arg)
{
	struct deferred *d = arg;
	struct ac_str chat_id = { d->chat_id, d->chat_id_len };
	useconds_t wait = 200000;
	int64_t id, created;
	enum ac_err err;

	do {
		usleep(wait);
		if (wait < 2000000)
			wait *= 2;
		err = ac_repo_send_finish(c->repo, chat_id, &d->state, &d->reply, &id, &created);
	} while ((err == AC_EBUSY || err == AC_EDB) && ac_mono_us() < d->until && !ac_server_stopping());
	if (err != AC_OK && err != AC_ENOTFOUND)
		ac_log(AC_LOG_ERROR, "a reply to chat %.*s could not be stored (%s): its send counts as failed "
		    "once its lock runs out", (int)chat_id.len, chat_id.ptr, ac_strerror(err));
	free(d->model);
	free(d->content);
	free(d);
}

/* Keeps trying to store reply after the response, for as long as the send's lock would hold it. */
static void
defer(struct send *s, const struct ac_reply *reply)
{
	struct deferred *d = calloc(1, sizeof(*d) + s->chat_id.len + 1);

	if (d == NULL)
		return;
	d->content = malloc(reply->content.len + 1);
	d->model = malloc(reply->model.len + 1);
	if (d->content == NULL || d->model == NULL) {
		free(d->content);
		free(d->model);
		free(d);
		return;
	}
	memcpy(d->chat_id, s->chat_id.ptr, s->chat_id.len);
	d->chat_id_len = s->chat_id.len;
	memcpy(d->content, reply->content.ptr, reply->content.len);
	memcpy(d->model, reply->model.ptr != NULL ? reply->model.ptr : "", reply->model.len);
	d->state = s->state;
	d->reply = *reply;
	d->reply.content.ptr = d->content;
	d->reply.model.ptr = d->model;
	d->until = ac_mono_us() + DEFER_MAX_US;
	if (!ac_after_response(s->c, deferred_settle, d)) {
		free(d->content);
		free(d->model);
		free(d);
	}
}

/*
 * Settles the send's reply row (the repository's finish), trying again a few times while the
 * database is busy or away: the provider's answer is not thrown away at the first hiccup, and if
 * it still cannot be stored, it is tried again after the response (so that the idempotency key's
 * repeat finds the answer, and the send does not stay locked).
 */
static enum ac_err
settle(struct send *s, const struct ac_reply *reply, int64_t *id, int64_t *created)
{
	static const useconds_t waits[FINISH_TRIES - 1] = { 50000, 200000, 500000 };
	enum ac_err err = AC_OK;

	for (int i = 0; i < FINISH_TRIES; i++) {
		err = ac_repo_send_finish(s->c->repo, s->chat_id, &s->state, reply, id, created);
		if (err != AC_EBUSY && err != AC_EDB)
			break;
		if (i + 1 < FINISH_TRIES)
			usleep(waits[i]);
	}
	if (err == AC_EBUSY || err == AC_EDB)
		defer(s, reply);
	s->finished = true;
	return err;
}

/* Finishes a send that got no reply at all (an error of ours before or around the provider). */
static void
settle_failed(struct send *s)
{
	struct ac_reply reply;
	int64_t id, created;

	if (s->finished)
		return;
	memset(&reply, 0, sizeof(reply));
	reply.outcome = AC_REPLY_FAILED;
	reply.content = AC_STR("");
	(void)settle(s, &reply, &id, &created);
}

/* Stores what the provider gave and answers; or answers the failure. */
static void
finish(struct send *s)
{
	struct ac_ctx *c = s->c;
	struct ac_llm_result *res = &s->res;
	struct ac_reply reply;
	struct ac_str model;
	int64_t id = 0, created = 0;
	enum ac_err err;
	char detail[600];
	struct ac_buf *b;

	model.ptr = res->model[0] != '\0' ? res->model : s->model->id;
	model.len = strlen(model.ptr);
	c->log.prompt_tokens = res->prompt_tokens;
	c->log.completion_tokens = res->completion_tokens;
	memset(&reply, 0, sizeof(reply));
	reply.content.ptr = res->text.data != NULL ? res->text.data : "";
	reply.content.len = res->text.len;
	reply.model = model;
	reply.prompt_tokens = res->prompt_tokens;
	reply.completion_tokens = res->completion_tokens;
	/* Keep what was generated, even cut short: nothing the user saw is lost. */
	if (res->fail == AC_LLM_OK)
		reply.outcome = AC_REPLY_COMPLETE;
	else
		reply.outcome = res->text.len > 0 ? AC_REPLY_INCOMPLETE : AC_REPLY_FAILED;
	err = settle(s, &reply, &id, &created);
	ac_send_limits_end(s, res->prompt_tokens + res->completion_tokens);
	if (res->fail != AC_LLM_OK) {
		if (res->fail == AC_LLM_CANCELLED && c->resp.failed)
			return;	/* nobody to tell */
		if (res->fail == AC_LLM_CANCELLED) {
			/* Cut short while the client waits: the process is stopping. */
			snprintf(detail, sizeof(detail), "Failed to get AI response: %s", res->detail);
			send_error(s, 503, detail);
			return;
		}
		if (res->fail == AC_LLM_NO_KEY)
			snprintf(detail, sizeof(detail), "%s", res->detail);
		else
			snprintf(detail, sizeof(detail), "Failed to get AI response: %s", res->detail);
		if (!c->resp.committed && res->retry_after >= 0) {
			char ra[16];

			ac_resp_error(c, 503, detail);
			snprintf(ra, sizeof(ra), "%d", res->retry_after);
			ac_resp_header(c, "Retry-After", ra);
			return;
		}
		send_error(s, 503, detail);
		return;
	}
	if (err == AC_ENOTFOUND) {
		send_error(s, 404, "The chat was deleted while the model answered");
		return;
	}
	if (err != AC_OK) {
		if (c->resp.committed) {
			send_error(s, 503, "Database unavailable: the reply could not be stored");
			return;
		}
		ac_resp_error(c, 503, "Database unavailable: the reply could not be stored");
		ac_resp_header(c, "Retry-After", "1");
		return;
	}
	b = s->stream ? &s->event : &c->resp.body;
	if (s->stream)
		ac_buf_reset(b, EVENT_KEEP);
	else
		ac_resp_start(c, 200);
	write_reply(b, s->chat_id, reply.content, id, s->state.user_message_id, model, res->prompt_tokens,
	    res->completion_tokens);
	if (s->stream && ac_buf_err(b) == AC_OK)
		(void)ac_resp_sse_event(c, "done", b->data, b->len);
	if (s->titles && (s->state.state == AC_SEND_NEW || s->state.state == AC_SEND_RETRY))
		ac_auto_title(c, s->chat_id, s->user_id);
}

/*
 * The event loop's side of a send: finish() on a pool thread, then the send freed.  Whatever must
 * happen once at a send's end (a per-user slot released, tokens counted) belongs in finish(): every
 * send that began reaches it exactly once, parked or not, cancelled too (the client left, the
 * provider failed, the process stopping; only a killed process does not, and its row's lock runs
 * out).  Work for after the answer goes through ac_after_response() as before: for a parked send it
 * runs on a pool thread once the loop has written the answer out.
 */
static void
parked_finish(struct ac_ctx *c, void *arg)
{
	struct send *s = arg;

	s->c = c;
	finish(s);
}

static void
parked_release(void *arg)
{
	ac_send_free(arg);
}

static const struct ac_park_ops park_ops = { parked_finish, parked_release };

/*
 * Hands the call to the event loop, which makes it and forwards its pieces; true when it took it
 * (c->parked: the send is the loop's from then on, not to be touched here).  False: *called says
 * whether the call was made here already (the loop could not take it once it was begun), else this
 * thread makes it.
 */
static bool
park(struct send *s, const struct ac_llm_msg *msgs, size_t n, bool *called)
{
	struct ac_ctx *c = s->c;

	*called = false;
	if (c->cgi || !c->cfg->event_loop || c->resp.failed)
		return false;
	if (ac_provider_new(c->cfg, &s->call) != AC_OK || !own_strings(s)) {
		ac_provider_free(s->call);
		s->call = NULL;
		return false;
	}
	s->hooks.delta = on_delta;
	s->hooks.idle = on_idle;
	s->hooks.reasoning = c->cfg->reasoning_stream ? on_reasoning : NULL;
	s->hooks.arg = s;
	*called = true;
	if (!ac_provider_begin(s->call, s->model, msgs, n, s->stream, s->stream ? &s->hooks : NULL, &s->res))
		return false;	/* over already (the request too large to send) */
	context_free(s);	/* the request is built from it: a parked send keeps only what it needs */
	if (ac_park(c, s->call, &park_ops, s, &s->park))
		return true;
	ac_provider_run(s->call);	/* the loop is full or stopping: the call is made here */
	return false;
}

/* Builds the context for the send's user message and asks the provider; always finishes the send. */
static void
answer(struct send *s)
{
	struct ac_ctx *c = s->c;
	struct ac_llm_hooks hooks = { .delta = on_delta, .idle = on_idle, .arg = s,
	    .reasoning = c->cfg->reasoning_stream ? on_reasoning : NULL };
	struct ac_llm_msg *msgs;
	size_t n = 0;
	bool called;
	enum ac_err err;

	s->budget = ac_send_history_budget(s);
	err = ac_repo_history(c->repo, s->chat_id, s->state.user_message_id, take_message, s);
	if (s->too_large) {
		settle_failed(s);
		ac_send_too_long(s, s->too_large_tokens);
		return;
	}
	if (err != AC_OK) {
		settle_failed(s);
		ac_resp_repo_error(c, err, s->chat_id);
		return;
	}
	msgs = context(s, &n);
	if (msgs == NULL) {
		settle_failed(s);
		ac_resp_error(c, 500, "Out of memory");
		return;
	}
	c->log.model = s->model->id;
	if (c->cfg->log_content && ac_log_enabled(AC_LOG_DEBUG)) {
		struct ac_buf b;

		ac_buf_init(&b, 3000);
		ac_json_str(&b, msgs[n - 1].content.ptr, msgs[n - 1].content.len > 2000 ? 2000 :
		    msgs[n - 1].content.len);
		ac_log(AC_LOG_DEBUG, "send chat_id=%.*s history=%zu message=%s", (int)s->chat_id.len,
		    s->chat_id.ptr, n - 1, b.data != NULL ? b.data : "\"\"");
		ac_buf_free(&b);
	}
	if (s->stream)
		ac_resp_sse_begin(c);
	if (park(s, msgs, n, &called)) {
		free(msgs);	/* s is the loop's now: not to be touched here */
		return;
	}
	if (!called)
		ac_provider_chat(c->provider, s->model, msgs, n, s->stream, s->stream ? &hooks : NULL, &s->res);
	free(msgs);
	finish(s);
}

/* What a send that began has to do next, by the state the repository gave it. */
void
ac_send_proceed(struct send *s, struct ac_verrs *v)
{
	struct ac_ctx *c = s->c;

	switch (s->state.state) {
	case AC_SEND_DONE:
		replay(s);
		break;
	case AC_SEND_BUSY:
		ac_resp_error(c, 409, "A request with this Idempotency-Key is still running");
		break;
	case AC_SEND_MISMATCH:
		ac_verrs_add(v, "header", "idempotency-key", "this key was used for another request",
		    "value_error", false, 0);
		ac_resp_invalid(c, v);
		break;
	case AC_SEND_NO_MESSAGE:
		ac_resp_error(c, 409, "The chat has no user message to answer");
		break;
	case AC_SEND_NOT_USER:
		ac_resp_error(c, 400, "Only a user message can be edited");
		break;
	case AC_SEND_NEW:
	case AC_SEND_RETRY:
		answer(s);
		break;
	}
}

struct send *
ac_send_new(struct ac_ctx *c)
{
	struct send *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		ac_resp_error(c, 500, "Out of memory");
		return NULL;
	}
	s->c = c;
	s->prompt.ptr = c->cfg->system_prompt;
	s->prompt.len = strlen(c->cfg->system_prompt);
	ac_buf_init(&s->text, c->cfg->max_body * 2 + 16 * 1048576);
	/* An event holds at most the whole reply, JSON-escaped (at most 6 bytes a byte). */
	ac_buf_init(&s->event, 6 * c->cfg->provider_max_response + 4096);
	ac_llm_result_init(&s->res, c->cfg->provider_max_response);
	return s;
}

