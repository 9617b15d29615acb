#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "json.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "sse.h"
#include "util.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 8000
#define SSE_LINE_MAX (1024 * 1024)
#define ERROR_BODY_MAX (64 * 1024)
#define BUF_KEEP (64 * 1024)	/* request and answer buffers shrink back to this after a large call */
#define RECV_BUFFER 4096	/* curl's receive buffer, per transfer */

struct ac_provider {
	const struct ac_config *cfg;
	CURL *curl;
	struct curl_slist *headers;
	struct ac_buf req;	/* the request body */
	struct ac_buf body;	/* a non-streamed (or error) response body */
	struct ac_sse sse;

	/* One call's state. */
	const struct ac_llm_hooks *hooks;
	struct ac_llm_result *res;
	bool stream;
	bool delivered;		/* a delta reached the caller: no retry from here */
	bool done;		/* [DONE] seen */
	int64_t last_sent;	/* ac_mono_us() when a hook last sent the client something */
	int64_t deadline;	/* ac_mono_us() when the whole call (every attempt) must be over */
	int attempt;		/* 0 for the first */
	char url[600];

	/* For the metrics and the provider's logs. */
	const struct ac_model *model;
	bool in_flight;		/* begun, and not yet ended (call_end) */
	int64_t began;		/* ac_mono_us() */
	int64_t first_piece;	/* ac_mono_us() of the first piece of reply text, 0: none yet */
	const struct ac_llm_opts *opts;	/* for the next begin's request only */
	struct curl_slist rid_node;	/* "X-Request-Id: ..." in front of headers, for this call */
	char rid_header[AC_REQUEST_ID_MAX + 16];
};

enum ac_err
ac_provider_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? AC_OK : AC_ESYS;
}

void
ac_scrub(char *s, const char *secret)
{
	static const char mark[] = "[redacted]";
	size_t n = strlen(secret), k = n < sizeof(mark) - 1 ? n : sizeof(mark) - 1;
	char *p = s;

	if (n == 0)
		return;
	while ((p = strstr(p, secret)) != NULL) {
		memcpy(p, mark, k);
		memmove(p + k, p + n, strlen(p + n) + 1);
		p += k;	/* on past the mark, which may itself hold the secret ("[red") */
	}
}

void
ac_llm_result_init(struct ac_llm_result *r, size_t max_text)
{
	memset(r, 0, sizeof(*r));
	ac_buf_init(&r->text, max_text);
	ac_buf_init(&r->reasoning, SSE_LINE_MAX);
	r->retry_after = -1;
}

void
ac_llm_result_free(struct ac_llm_result *r)
{
	ac_buf_free(&r->text);
	ac_buf_free(&r->reasoning);
}

enum ac_err
ac_provider_new(const struct ac_config *cfg, struct ac_provider **out)
{
	struct ac_provider *p = calloc(1, sizeof(*p));
	char auth[300];

	*out = NULL;
	if (p == NULL)
		return AC_ENOMEM;
	p->cfg = cfg;
	ac_buf_init(&p->req, 64 * 1048576);
	ac_buf_init(&p->body, cfg->provider_max_response);
	ac_sse_init(&p->sse, SSE_LINE_MAX);
	p->curl = curl_easy_init();
	if (p->curl == NULL)
		goto fail;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->api_key);
	p->headers = curl_slist_append(p->headers, auth);
	explicit_bzero(auth, sizeof(auth));
	p->headers = curl_slist_append(p->headers, "Content-Type: application/json");
	p->headers = curl_slist_append(p->headers, "Expect:");
	if (p->headers == NULL)
		goto fail;
	*out = p;
	return AC_OK;
fail:
	ac_provider_free(p);
	return AC_ENOMEM;
}

void
ac_provider_free(struct ac_provider *p)
{
	if (p == NULL)
		return;
	if (p->in_flight)
		ac_metrics_in_flight(-1);
	curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	ac_buf_free(&p->req);
	ac_buf_free(&p->body);
	ac_sse_free(&p->sse);
	free(p);
}

static void
build_request(struct ac_provider *p, const struct ac_model *m, const struct ac_llm_msg *msgs,
    size_t count, bool stream)
{
	static const char *const roles[] = { "system", "user", "assistant" };
	const struct ac_llm_opts *o = p->opts;
	struct ac_buf *b = &p->req;

	ac_buf_reset(b, BUF_KEEP);
	ac_buf_adds(b, "{\"model\":");
	ac_json_cstr(b, m->id);
	ac_buf_adds(b, ",\"messages\":[");
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			ac_buf_addc(b, ',');
		ac_buf_adds(b, "{\"role\":\"");
		ac_buf_adds(b, roles[msgs[i].role]);
		ac_buf_adds(b, "\",\"content\":");
		ac_json_str(b, msgs[i].content.ptr, msgs[i].content.len);
		ac_buf_addc(b, '}');
	}
	ac_buf_printf(b, "],\"temperature\":%.6g,\"max_completion_tokens\":%lld",
	    o != NULL && o->has_temperature ? o->temperature : m->temperature,
	    (long long)(o != NULL && o->max_tokens > 0 ? o->max_tokens : m->max_completion_tokens));
	if (m->reasoning_effort[0] != '\0' && (o == NULL || !o->own_reasoning_effort))
		ac_buf_printf(b, ",\"reasoning_effort\":\"%s\"", m->reasoning_effort);
	if (o != NULL && o->extra != NULL)
		ac_buf_add(b, o->extra, o->extra_len);
	if (stream)
		ac_buf_adds(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	else
		ac_buf_adds(b, ",\"stream\":false");
	ac_buf_addc(b, '}');
}

void
ac_provider_set_opts(struct ac_provider *p, const struct ac_llm_opts *opts)
{
	p->opts = opts;
}

/* Fails the call with a reason; the first failure stands. */
static void
set_fail(struct ac_llm_result *res, enum ac_llm_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_fail(struct ac_llm_result *res, enum ac_llm_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (res->fail != AC_LLM_OK)
		return;
	res->fail = fail;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
}

static void
read_usage(struct ac_llm_result *res, struct json_object *usage)
{
	struct json_object *v;

	if (usage == NULL || !json_object_is_type(usage, json_type_object))
		return;
	if (json_object_object_get_ex(usage, "prompt_tokens", &v))
		res->prompt_tokens = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "completion_tokens", &v))
		res->completion_tokens = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "total_tokens", &v))
		res->total_tokens = json_object_get_int64(v);
}

static void
read_model(struct ac_llm_result *res, struct json_object *o)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string))
		snprintf(res->model, sizeof(res->model), "%s", json_object_get_string(v));
}

static void
read_finish(struct ac_llm_result *res, struct json_object *choice)
{
	struct json_object *v;

	if (json_object_object_get_ex(choice, "finish_reason", &v) && json_object_is_type(v, json_type_string))
		snprintf(res->finish_reason, sizeof(res->finish_reason), "%s", json_object_get_string(v));
}

/* choices[0], or NULL. */
static struct json_object *
first_choice(struct json_object *o)
{
	struct json_object *choices;

	if (!json_object_object_get_ex(o, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array) || json_object_array_length(choices) == 0)
		return NULL;
	return json_object_array_get_idx(choices, 0);
}

enum ac_err
ac_llm_parse_event(struct ac_llm_result *res, const char *data, size_t len, bool *done, size_t *piece_at)
{
	struct json_object *o = NULL, *choice, *delta, *v, *xg;
	struct ac_json_error jerr;
	enum ac_err err = AC_OK;

	*piece_at = res->text.len;
	ac_buf_reset(&res->reasoning, BUF_KEEP);
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		*done = true;
		return AC_OK;
	}
	if (ac_json_parse(data, len, &o, &jerr) != AC_OK || !json_object_is_type(o, json_type_object)) {
		set_fail(res, AC_LLM_BAD_RESPONSE, "the provider's stream held an event that is not JSON");
		err = AC_EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(o, "error", &v) && v != NULL) {
		/* Its message is the provider's, not ours to pass on. */
		set_fail(res, AC_LLM_PROVIDER_ERROR, "the provider failed mid-reply");
		err = AC_EINVAL;
		goto out;
	}
	read_model(res, o);
	if (json_object_object_get_ex(o, "usage", &v))
		read_usage(res, v);
	if (json_object_object_get_ex(o, "x_groq", &xg) && json_object_object_get_ex(xg, "usage", &v))
		read_usage(res, v);
	choice = first_choice(o);
	if (choice == NULL)
		goto out;
	read_finish(res, choice);
	if (!json_object_object_get_ex(choice, "delta", &delta))
		goto out;
	/* Groq's reasoning models send "reasoning"; others (DeepSeek, vLLM) "reasoning_content". */
	if ((json_object_object_get_ex(delta, "reasoning", &v) ||
	    json_object_object_get_ex(delta, "reasoning_content", &v)) && json_object_is_type(v, json_type_string))
		ac_buf_add(&res->reasoning, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	if (json_object_object_get_ex(delta, "content", &v) && json_object_is_type(v, json_type_string)) {
		ac_buf_add(&res->text, json_object_get_string(v), (size_t)json_object_get_string_len(v));
		if (ac_buf_err(&res->text) != AC_OK) {
			set_fail(res, AC_LLM_BAD_RESPONSE, "the reply was larger than %zu bytes", res->text.max);
			err = AC_ETOOBIG;
		}
	}
out:
	json_object_put(o);
	return err;
}

/* One event of the stream: parsed, then its piece handed on. */
static enum ac_err
on_event(void *arg, const char *data, size_t len)
{
	struct ac_provider *p = arg;
	struct ac_llm_result *res = p->res;
	size_t at;
	enum ac_err err = ac_llm_parse_event(res, data, len, &p->done, &at);
	const struct ac_llm_hooks *h = p->hooks;

	if (err == AC_OK && res->text.len > at && p->first_piece == 0)
		p->first_piece = ac_mono_us();
	if (err != AC_OK || h == NULL)
		return err;
	/* Only what reaches the client holds off the heartbeat: a proxy times out on silence. */
	if (res->reasoning.len > 0 && h->reasoning != NULL) {
		p->delivered = true;
		p->last_sent = ac_mono_us();
		if (h->reasoning(h->arg, res->reasoning.data, res->reasoning.len) != AC_OK) {
			set_fail(res, AC_LLM_CANCELLED, "the client went away");
			return AC_EIO;
		}
	}
	if (res->text.len > at && h->delta != NULL) {
		p->delivered = true;
		p->last_sent = ac_mono_us();
		if (h->delta(h->arg, res->text.data + at, res->text.len - at) != AC_OK) {
			set_fail(res, AC_LLM_CANCELLED, "the client went away");
			return AC_EIO;
		}
	}
	return AC_OK;
}

static long
status_of(struct ac_provider *p)
{
	long status = 0;

	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static size_t
on_write(char *data, size_t size, size_t n, void *arg)
{
	struct ac_provider *p = arg;
	size_t len = size * n;

	if (p->stream && status_of(p) == 200) {
		if (ac_sse_feed(&p->sse, data, len, on_event, p) != AC_OK) {
			if (p->res->fail == AC_LLM_OK)
				set_fail(p->res, AC_LLM_BAD_RESPONSE, "the provider's stream was malformed or too large");
			return 0;
		}
		return len;
	}
	ac_buf_add(&p->body, data, len);
	if (ac_buf_err(&p->body) != AC_OK) {
		set_fail(p->res, AC_LLM_BAD_RESPONSE, "the provider's answer was larger than %zu bytes",
		    p->body.max);
		return 0;
	}
	return len;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct ac_provider *p = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
		char v[32];
		size_t vl = len - 12;

		if (vl >= sizeof(v))
			vl = sizeof(v) - 1;
		memcpy(v, data + 12, vl);
		v[vl] = '\0';
		/* Seconds (possibly fractional); an HTTP date is not used by OpenAI-style APIs. */
		double secs = strtod(v, NULL);

		if (secs > 0 && secs < 1e6)
			p->res->retry_after = (int)(secs + 0.999);
	}
	return len;
}

/* Progress: time to send a heartbeat, or to stop because the client went away. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct ac_provider *p = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (p->hooks == NULL || p->hooks->idle == NULL)
		return 0;
	if (ac_mono_us() - p->last_sent < (int64_t)p->cfg->heartbeat_s * 1000000)
		return 0;
	p->last_sent = ac_mono_us();
	if (p->hooks->idle(p->hooks->arg) != AC_OK) {
		set_fail(p->res, AC_LLM_CANCELLED, "the client went away");
		return 1;
	}
	return 0;
}

/*
 * The error code of an error body ({"error": {"code": "model_not_found", ...}}), if it is a short
 * identifier; "" otherwise.  Its message is never read: it is the provider's text, which may echo
 * the key (whole, or masked to a fragment) and is not ours to pass on or log.
 */
static void
error_code(struct ac_provider *p, char *code, size_t code_size)
{
	struct json_object *o = NULL, *e, *v;
	struct ac_json_error jerr;

	code[0] = '\0';
	if (p->body.len == 0 || p->body.len > ERROR_BODY_MAX ||
	    ac_json_parse(p->body.data, p->body.len, &o, &jerr) != AC_OK)
		return;
	if (json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object) &&
	    json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_string)) {
		const char *c = json_object_get_string(v);
		size_t n = strlen(c);

		if (n < code_size && strspn(c, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n)
			memcpy(code, c, n + 1);
	}
	json_object_put(o);
}

void
ac_llm_parse_completion(struct ac_llm_result *res, const char *data, size_t len)
{
	struct json_object *o = NULL, *choice, *msg, *v;
	struct ac_json_error jerr;

	if (ac_json_parse(data, len, &o, &jerr) != AC_OK || !json_object_is_type(o, json_type_object)) {
		set_fail(res, AC_LLM_BAD_RESPONSE, "the provider's answer is not JSON");
		goto out;
	}
	choice = first_choice(o);
	if (choice == NULL || !json_object_object_get_ex(choice, "message", &msg) ||
	    !json_object_object_get_ex(msg, "content", &v) || !json_object_is_type(v, json_type_string)) {
		set_fail(res, AC_LLM_BAD_RESPONSE, "the provider's answer holds no message content");
		goto out;
	}
	ac_buf_add(&res->text, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	if (ac_buf_err(&res->text) != AC_OK) {
		set_fail(res, AC_LLM_BAD_RESPONSE, "the reply was larger than %zu bytes", res->text.max);
		goto out;
	}
	read_model(res, o);
	read_finish(res, choice);
	if (json_object_object_get_ex(o, "usage", &v))
		read_usage(res, v);
out:
	json_object_put(o);
}

/* Classifies a finished transfer; true when it is worth another try. */
static bool
classify(struct ac_provider *p, CURLcode rc)
{
	struct ac_llm_result *res = p->res;
	long status = status_of(p);
	char code[64];

	res->http_status = (int)status;
	if (res->fail != AC_LLM_OK)
		return false;	/* set by a callback: cancelled, malformed, too large */
	if (rc != CURLE_OK) {
		curl_off_t pretransfer = 0;

		/* Whether the request went out: the connect time is 0 on a reused (kept-alive) connection
		 * too, so it cannot tell a connect timeout from a provider that went silent. */
		curl_easy_getinfo(p->curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
		switch (rc) {
		case CURLE_OPERATION_TIMEDOUT:
			if (pretransfer <= 0 && ac_mono_us() < p->deadline) {
				set_fail(res, AC_LLM_UNREACHABLE, "could not connect to the provider within %d ms",
				    p->cfg->connect_timeout_ms);
				return !p->delivered;
			}
			set_fail(res, AC_LLM_TIMEOUT, "the provider did not answer within %d s",
			    p->cfg->provider_timeout_s);
			return false;
		case CURLE_GOT_NOTHING:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_PARTIAL_FILE:
			set_fail(res, AC_LLM_UNREACHABLE, "the connection to the provider dropped (%s)",
			    curl_easy_strerror(rc));
			return !p->delivered;
		default:
			set_fail(res, AC_LLM_UNREACHABLE, "could not reach the provider (%s)",
			    curl_easy_strerror(rc));
			return !p->delivered;
		}
	}
	if (status == 200) {
		if (!p->stream)
			ac_llm_parse_completion(res, p->body.data != NULL ? p->body.data : "", p->body.len);
		else if (!p->done && res->finish_reason[0] == '\0')
			set_fail(res, AC_LLM_UNREACHABLE, "the provider's stream ended before the reply did");
		return res->fail == AC_LLM_UNREACHABLE && !p->delivered;
	}
	error_code(p, code, sizeof(code));
	ac_log(AC_LOG_WARN, "provider answered %ld%s%s (attempt %d)", status, code[0] != '\0' ? " code=" : "",
	    code, res->attempts);
	if (status == 401 || status == 403) {
		set_fail(res, AC_LLM_KEY_REFUSED, "the provider refused the API key (%ld)", status);
		return false;
	}
	if (status == 404 || strcmp(code, "model_not_found") == 0 || strcmp(code, "model_decommissioned") == 0) {
		set_fail(res, AC_LLM_MODEL_UNAVAILABLE, "the model is unavailable (%ld)", status);
		return false;
	}
	if (status == 429) {
		if (res->retry_after >= 0)
			set_fail(res, AC_LLM_RATE_LIMITED, "rate limited by the provider (retry after %d s)",
			    res->retry_after);
		else
			set_fail(res, AC_LLM_RATE_LIMITED, "rate limited by the provider");
		return res->retry_after <= AC_RETRY_AFTER_MAX;
	}
	if (status >= 500 || status == 408 || status == 409 || status == 498) {
		set_fail(res, AC_LLM_PROVIDER_ERROR, "the provider failed (%ld)", status);
		return res->retry_after <= AC_RETRY_AFTER_MAX;
	}
	if (status == 413)
		set_fail(res, AC_LLM_REJECTED, "the provider refused the request as too large (413)");
	else
		set_fail(res, AC_LLM_REJECTED, "the provider refused the request (%ld)", status);
	return false;
}

/* Ends a call: what the client may read of the failure never holds the key; the metrics count it
 * (once, whichever way it ended). */
static void
call_end(struct ac_provider *p)
{
	struct ac_llm_result *res = p->res;

	if (res->fail != AC_LLM_OK)
		ac_scrub(res->detail, p->cfg->api_key);
	if (p->in_flight) {
		int model = p->model != NULL ? (int)(p->model - p->cfg->models.m) : -1;

		p->in_flight = false;
		ac_metrics_in_flight(-1);
		ac_metrics_provider(model, (int)res->fail, ac_mono_us() - p->began,
		    p->stream && p->first_piece > 0 ? p->first_piece - p->began : -1, res->prompt_tokens,
		    res->completion_tokens);
		if (res->fail == AC_LLM_RATE_LIMITED)
			ac_metrics_rate_limited(AC_LIMIT_PROVIDER);
	}
}

bool
ac_provider_begin(struct ac_provider *p, const struct ac_model *model, const struct ac_llm_msg *msgs,
    size_t count, bool stream, const struct ac_llm_hooks *hooks, struct ac_llm_result *res)
{
	const char *rid = ac_log_request_id();

	if (p->in_flight) {	/* a call that never ended (not expected): counted as ended now */
		p->in_flight = false;
		ac_metrics_in_flight(-1);
	}
	p->res = res;
	p->hooks = hooks;
	p->stream = stream;
	p->delivered = false;
	p->attempt = 0;
	p->model = model;
	p->first_piece = 0;
	p->rid_header[0] = '\0';
	if (rid[0] != '\0')	/* the request's id (checked: a header's safe characters only) */
		snprintf(p->rid_header, sizeof(p->rid_header), "X-Request-Id: %s", rid);
	p->deadline = ac_mono_us() + (int64_t)p->cfg->provider_timeout_s * 1000000;
	p->last_sent = ac_mono_us();
	if (p->cfg->api_key[0] == '\0') {
		p->opts = NULL;
		set_fail(res, AC_LLM_NO_KEY, "GROQ_API_KEY is not set");
		return false;
	}
	build_request(p, model, msgs, count, stream);
	p->opts = NULL;
	if (ac_buf_err(&p->req) != AC_OK) {
		set_fail(res, AC_LLM_REJECTED, "the request is too large to send");
		return false;
	}
	snprintf(p->url, sizeof(p->url), "%s/chat/completions", p->cfg->base_url);
	p->began = ac_mono_us();
	p->in_flight = true;
	ac_metrics_in_flight(1);
	return true;
}

void *
ac_provider_attempt(struct ac_provider *p)
{
	struct ac_llm_result *res = p->res;
	CURL *c = p->curl;
	int64_t left_ms = (p->deadline - ac_mono_us()) / 1000;

	if (left_ms <= 0) {
		set_fail(res, AC_LLM_TIMEOUT, "the provider did not answer within %d s", p->cfg->provider_timeout_s);
		call_end(p);
		return NULL;
	}
	res->attempts = p->attempt + 1;
	res->fail = AC_LLM_OK;
	res->detail[0] = '\0';
	res->retry_after = -1;
	res->text.len = 0;
	res->text.err = AC_OK;
	res->finish_reason[0] = '\0';
	ac_buf_reset(&p->body, BUF_KEEP);
	ac_sse_reset(&p->sse);
	p->done = false;

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, p->url);
	if (p->rid_header[0] != '\0') {
		p->rid_node.data = p->rid_header;
		p->rid_node.next = p->headers;
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, &p->rid_node);
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, p->headers);
	}
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->req.data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->req.len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, p);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->cfg->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left_ms);	/* what is left of the call's time */
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ai-chat-fcgi/1.0");
	/* A chat's answer arrives in small pieces: a small receive buffer keeps a waiting call cheap
	 * (curl's default is 16 KiB a handle); an HTTP/2 provider's calls share its connections. */
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
	/* Over TLS a new call waits for a connection being set up to say whether it multiplexes (ALPN):
	 * with HTTP/2, thousands of calls then share a few connections.  Plain http:// is HTTP/1.1, where
	 * the wait would only serialise the calls. */
	if (strncmp(p->url, "https://", 8) == 0)
		curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
	return c;
}

/* How long to wait before the next try; -1 if the wait would end past the call's deadline. */
static long
backoff_ms(struct ac_provider *p, int attempt)
{
	long ms;
	unsigned short r = 0;

	if (p->res->retry_after >= 0) {
		ms = p->res->retry_after * 1000L;
	} else {
		ms = BACKOFF_BASE_MS << attempt;
		if (ms > BACKOFF_MAX_MS)
			ms = BACKOFF_MAX_MS;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
			r = (unsigned short)time(NULL);
		ms = ms / 2 + (long)(r % (unsigned)(ms / 2 + 1));	/* jitter: 50..100% */
	}
	if (ac_mono_us() + ms * 1000LL >= p->deadline)
		return -1;
	return ms;
}

long
ac_provider_attempt_end(struct ac_provider *p, int curl_code)
{
	long wait;

	if (!classify(p, (CURLcode)curl_code) || p->attempt >= p->cfg->provider_retries) {
		call_end(p);
		return -1;
	}
	/* Free the answer before the wait: a waiting call should not hold a large one. */
	ac_buf_reset(&p->body, BUF_KEEP);
	wait = backoff_ms(p, p->attempt);
	if (wait < 0) {
		call_end(p);
		return -1;
	}
	p->attempt++;
	ac_metrics_retry();
	return wait;
}

bool
ac_provider_tick(struct ac_provider *p)
{
	return on_progress(p, 0, 0, 0, 0) == 0;
}

int64_t
ac_provider_tick_due(const struct ac_provider *p)
{
	if (p->hooks == NULL || p->hooks->idle == NULL)
		return INT64_MAX;
	return p->last_sent + (int64_t)p->cfg->heartbeat_s * 1000000;
}

void
ac_provider_cancel(struct ac_provider *p, const char *why)
{
	p->res->fail = AC_LLM_OK;	/* an earlier attempt's failure gives way */
	set_fail(p->res, AC_LLM_CANCELLED, "%s", why);
	call_end(p);
}

void
ac_provider_chat(struct ac_provider *p, const struct ac_model *model, const struct ac_llm_msg *msgs,
    size_t count, bool stream, const struct ac_llm_hooks *hooks, struct ac_llm_result *res)
{
	if (ac_provider_begin(p, model, msgs, count, stream, hooks, res))
		ac_provider_run(p);
}

void
ac_provider_run(struct ac_provider *p)
{
	struct timespec step = { 0, 100 * 1000000L };

	for (;;) {
		CURL *c = ac_provider_attempt(p);
		long wait;

		if (c == NULL)
			return;
		wait = ac_provider_attempt_end(p, curl_easy_perform(c));
		if (wait < 0)
			return;
		/* The wait, in steps, keeping heartbeats going. */
		for (long waited = 0; waited < wait; waited += 100) {
			nanosleep(&step, NULL);
			if (!ac_provider_tick(p)) {
				call_end(p);
				return;
			}
		}
	}
}

static size_t
discard(char *data, size_t size, size_t n, void *arg)
{
	(void)data;
	(void)arg;
	return size * n;
}

enum ac_llm_fail
ac_provider_ping(struct ac_provider *p, char *detail, size_t detail_size)
{
	char url[600];
	CURL *c = p->curl;
	CURLcode rc;
	long status = 0;

	if (p->cfg->api_key[0] == '\0') {
		snprintf(detail, detail_size, "GROQ_API_KEY is not set");
		return AC_LLM_NO_KEY;
	}
	snprintf(url, sizeof(url), "%s/models", p->cfg->base_url);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->cfg->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->cfg->connect_timeout_ms + 5000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		snprintf(detail, detail_size, "could not reach the provider (%s)", curl_easy_strerror(rc));
		return rc == CURLE_OPERATION_TIMEDOUT ? AC_LLM_TIMEOUT : AC_LLM_UNREACHABLE;
	}
	if (status == 401 || status == 403) {
		snprintf(detail, detail_size, "the provider refused the API key (%ld)", status);
		return AC_LLM_KEY_REFUSED;
	}
	if (status != 200) {
		snprintf(detail, detail_size, "the provider answered %ld", status);
		return AC_LLM_PROVIDER_ERROR;
	}
	return AC_LLM_OK;
}
