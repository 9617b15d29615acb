/* The request's line in the log (text, or JSON with LOG_FORMAT=json) and its figures in the metrics. */
#include <string.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "worker.h"

#define SCRATCH_KEEP (64 * 1024)	/* as server.c's */

/* A string for a JSON line: the value, or null. */
static void
json_or_null(struct ac_buf *b, const char *s, size_t len)
{
	if (s != NULL)
		ac_json_str(b, s, len);
	else
		ac_buf_adds(b, "null");
}

/*
 * The request line: method, path (no query), route, status, duration, user, model, tokens and
 * request id; a JSON object with LOG_FORMAT=json.  And the request's figures in the metrics.
 */
void
ac_log_request(struct ac_ctx *c, int64_t started)
{
	struct ac_str path = c->req.raw_path;
	struct ac_buf *user = &c->scratch;	/* the request's decoded target is no longer needed */
	int64_t took = ac_mono_us() - started;
	size_t plen = path.ptr != NULL ? (path.len > 512 ? 512 : path.len) : 0;

	ac_metrics_http(c->log.route, c->req.method_name, c->resp.status, took);
	if (!ac_log_enabled(AC_LOG_INFO))
		return;
	ac_buf_reset(user, SCRATCH_KEEP);
	if (ac_log_json()) {
		ac_buf_adds(user, "\"msg\":\"request\",\"request_id\":");
		ac_json_cstr(user, c->log.request_id);
		ac_buf_adds(user, ",\"method\":");
		json_or_null(user, c->req.method_name, c->req.method_name != NULL ? strlen(c->req.method_name) : 0);
		ac_buf_adds(user, ",\"path\":");
		ac_json_str(user, path.ptr != NULL ? path.ptr : "", plen);
		ac_buf_adds(user, ",\"route\":");
		json_or_null(user, c->log.route, c->log.route != NULL ? strlen(c->log.route) : 0);
		ac_buf_printf(user, ",\"status\":%d,\"duration_ms\":%.1f,\"user\":", c->resp.status,
		    (double)took / 1000.0);
		json_or_null(user, c->log.user_id_len > 0 ? c->log.user_id : NULL, c->log.user_id_len);
		ac_buf_adds(user, ",\"model\":");
		json_or_null(user, c->log.model, c->log.model != NULL ? strlen(c->log.model) : 0);
		ac_buf_printf(user, ",\"tokens\":{\"prompt\":%lld,\"completion\":%lld},\"client_gone\":%s",
		    (long long)c->log.prompt_tokens, (long long)c->log.completion_tokens,
		    c->resp.failed ? "true" : "false");
		if (ac_buf_err(user) == AC_OK)
			ac_log_fields(AC_LOG_INFO, user->data, user->len);
		return;
	}
	if (c->log.user_id_len > 0)
		ac_json_str(user, c->log.user_id, c->log.user_id_len);
	ac_log(AC_LOG_INFO, "request method=%s path=%.*s status=%d ms=%.1f user_id=%s model=%s tokens=%lld+%lld "
	    "route=%s request_id=%s%s",
	    c->req.method_name != NULL ? c->req.method_name : "-", (int)plen,
	    path.ptr != NULL ? path.ptr : "", c->resp.status, (double)took / 1000.0,
	    user->len > 0 ? user->data : "-", c->log.model != NULL ? c->log.model : "-",
	    (long long)c->log.prompt_tokens, (long long)c->log.completion_tokens,
	    c->log.route != NULL ? c->log.route : "-", c->log.request_id[0] != '\0' ? c->log.request_id : "-",
	    c->resp.failed ? " client-gone" : "");
}

