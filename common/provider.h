/*
 * The model provider: chat completions over an OpenAI-compatible HTTP API (Groq by default), with
 * libcurl.  A struct ac_provider makes one call at a time: one per thread for calls that block it (its
 * curl handle is reused, so the TLS connection to the provider stays open between requests), or one
 * per call parked on the event loop, whose multi handle keeps the connections.
 *
 * Retries 429, 408, 5xx and connection failures up to PROVIDER_RETRIES times with exponential
 * backoff and jitter, honouring retry-after up to 60 s; never other 4xx, and never once a streamed
 * reply has started reaching the client.  PROVIDER_TIMEOUT_S bounds the whole call, every attempt
 * and wait included.  Failures are told in our own words: the provider's error text is never passed
 * on (it may echo the key, whole or masked).
 */
#ifndef AC_PROVIDER_H
#define AC_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "models.h"

#define AC_RETRY_AFTER_MAX 60	/* a longer retry-after is not waited for */

enum ac_llm_role {
	AC_LLM_SYSTEM,
	AC_LLM_USER,
	AC_LLM_ASSISTANT,
};

struct ac_llm_msg {
	enum ac_llm_role role;
	struct ac_str content;
};

/* Why a call failed. */
enum ac_llm_fail {
	AC_LLM_OK = 0,
	AC_LLM_NO_KEY,			/* GROQ_API_KEY is not set */
	AC_LLM_RATE_LIMITED,		/* 429 */
	AC_LLM_TIMEOUT,			/* no complete answer within PROVIDER_TIMEOUT_S, retries included */
	AC_LLM_UNREACHABLE,		/* DNS, connect, TLS, or the connection dropped */
	AC_LLM_KEY_REFUSED,		/* 401, 403 */
	AC_LLM_MODEL_UNAVAILABLE,	/* 404, model_not_found, model_decommissioned */
	AC_LLM_REJECTED,		/* another 4xx */
	AC_LLM_PROVIDER_ERROR,		/* 5xx, 498, or an error event in the stream */
	AC_LLM_BAD_RESPONSE,		/* a body that is not a chat completion, or too large */
	AC_LLM_CANCELLED,		/* the caller's hook asked to stop (the client went away) */
};

struct ac_llm_result {
	struct ac_buf text;		/* the reply, as far as it came */
	struct ac_buf reasoning;	/* the last stream event's piece of reasoning (not kept) */
	char model[128];		/* the model id the provider reports */
	int64_t prompt_tokens;
	int64_t completion_tokens;
	int64_t total_tokens;
	char finish_reason[32];
	enum ac_llm_fail fail;
	int http_status;		/* the provider's last status, 0 if none */
	int retry_after;		/* seconds the provider asked to wait, -1 if it did not say */
	int attempts;
	char detail[512];		/* for the client when fail != AC_LLM_OK; never holds the key */
};

/* Hooks for a streamed call (all may be NULL). */
struct ac_llm_hooks {
	/* A piece of the reply; an error stops the transfer (AC_LLM_CANCELLED). */
	enum ac_err (*delta)(void *arg, const char *text, size_t len);
	/* A piece of the model's reasoning (delta.reasoning); NULL: not passed on. */
	enum ac_err (*reasoning)(void *arg, const char *text, size_t len);
	/* Called every SSE_HEARTBEAT_S seconds in which no other hook was called (nothing was sent to
	 * the client: reasoning that is not passed on does not count); an error stops the transfer. */
	enum ac_err (*idle)(void *arg);
	void *arg;
};

struct ac_provider;

/* A call's own settings over the model's (the OpenAI-compatible route's request), for one call. */
struct ac_llm_opts {
	bool has_temperature;
	double temperature;
	int64_t max_tokens;		/* 0: the model's max_completion_tokens */
	bool own_reasoning_effort;	/* extra sets reasoning_effort: the model's is left out */
	const char *extra;		/* JSON members added as they are (",\"top_p\":0.5"), or NULL */
	size_t extra_len;
};

enum ac_err ac_provider_global_init(void);	/* once, before threads */
enum ac_err ac_provider_new(const struct ac_config *cfg, struct ac_provider **out);
void ac_provider_free(struct ac_provider *p);

void ac_llm_result_init(struct ac_llm_result *r, size_t max_text);
void ac_llm_result_free(struct ac_llm_result *r);

/*
 * Sends one chat completion.  With stream, the provider's server-sent events are parsed and each
 * piece handed to hooks->delta as it arrives.  res says how it went; res->text holds what came.
 */
void ac_provider_chat(struct ac_provider *p, const struct ac_model *model, const struct ac_llm_msg *msgs,
    size_t count, bool stream, const struct ac_llm_hooks *hooks, struct ac_llm_result *res);

/*
 * The same call step by step, for an event loop that runs many calls on one curl multi handle
 * (fcgi/loop.c).  ac_provider_chat is: begin; then attempt, run the handle, attempt_end, and wait
 * what it says, until it says -1.  Hooks are called from inside the multi handle's callbacks.
 */

/* The next begin's call uses opts (copied from when it builds its request; NULL: the model's). */
void ac_provider_set_opts(struct ac_provider *p, const struct ac_llm_opts *opts);

/* Begins a call (the request is built and kept for retries); false when it is over already. */
bool ac_provider_begin(struct ac_provider *p, const struct ac_model *model, const struct ac_llm_msg *msgs,
    size_t count, bool stream, const struct ac_llm_hooks *hooks, struct ac_llm_result *res);
/* The curl easy handle (a CURL *) set up for the next attempt; NULL when the call's time is up. */
void *ac_provider_attempt(struct ac_provider *p);
/* The attempt's transfer ended with curl's code: milliseconds to wait before the next attempt, or -1
 * when the call is over (res says how it went). */
long ac_provider_attempt_end(struct ac_provider *p, int curl_code);
/* When the idle hook is next due (ac_mono_us(); INT64_MAX: never), and calling it: false when the
 * hook failed, which cancels the call. */
int64_t ac_provider_tick_due(const struct ac_provider *p);
bool ac_provider_tick(struct ac_provider *p);
/* Makes a begun call to its end here, blocking (ac_provider_chat after its begin). */
void ac_provider_run(struct ac_provider *p);
/* Ends the call as AC_LLM_CANCELLED (its transfer already out of any multi handle). */
void ac_provider_cancel(struct ac_provider *p, const char *why);

/*
 * Whether the provider answers: GET <base>/models with the key, within the connect timeout plus 5 s.
 * Returns AC_LLM_OK, or the failure with detail filled in.
 */
enum ac_llm_fail ac_provider_ping(struct ac_provider *p, char *detail, size_t detail_size);

/*
 * Parses one event of a streamed completion into res: the text it adds (from *piece_at on), its
 * reasoning (res->reasoning, replaced each event), the model, usage and finish reason; *done for
 * [DONE]; a failure (error event, not JSON, too large) is set in res and returned.  The stream
 * parser's core, apart so it can be fuzzed.
 */
enum ac_err ac_llm_parse_event(struct ac_llm_result *res, const char *data, size_t len, bool *done,
    size_t *piece_at);

/* Parses a complete (not streamed) chat completion into res; data[len] must be readable (a NUL). */
void ac_llm_parse_completion(struct ac_llm_result *res, const char *data, size_t len);

/* Replaces every copy of secret in s by "[redacted]" (in place, shortening only: a secret shorter
 * than that leaves as much of "[redacted]" as it had characters). */
void ac_scrub(char *s, const char *secret);

#endif
