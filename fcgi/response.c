/* Writing the answer: status, headers, JSON bodies; large bodies stream out in pieces. */
#include <stdio.h>
#include <string.h>

#include "../common/json.h"
#include "worker.h"

#define RESP_KEEP (64 * 1024)	/* a thread's body buffer shrinks back to this after a larger answer */

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void
put(struct ac_ctx *c, const char *data, size_t len)
{
	if (c->resp.failed || len == 0)
		return;
	if (ac_io_write(c, data, (int)len) < 0)
		c->resp.failed = true;
}

/* What browser code on another origin may read of an answer besides the basic headers. */
#define CORS_EXPOSE "Access-Control-Expose-Headers: X-Has-More, Retry-After, Idempotent-Replayed, X-Request-Id\r\n"

static void
add_cors(struct ac_ctx *c, struct ac_buf *h)
{
	const char *origin = c->req.origin;

	if (c->cfg->cors_any) {
		if (origin != NULL)
			ac_buf_adds(h, "Access-Control-Allow-Origin: *\r\n" CORS_EXPOSE);
		return;
	}
	/* The answer depends on the Origin whatever it was (missing, refused, allowed): a cache must
	 * not hand one origin's answer to another. */
	ac_buf_adds(h, "Vary: Origin\r\n");
	if (origin == NULL)
		return;
	for (int i = 0; i < c->cfg->cors_count; i++) {
		if (strcmp(origin, c->cfg->cors_origins[i]) == 0) {
			ac_buf_printf(h, "Access-Control-Allow-Origin: %s\r\n" CORS_EXPOSE, origin);
			return;
		}
	}
}

/* Where a head goes: out to the client (put), or into a buffer (ac_resp_sse_head). */
typedef void (*head_sink)(struct ac_ctx *c, void *arg, const char *data, size_t len);

static void
sink_put(struct ac_ctx *c, void *arg, const char *data, size_t len)
{
	(void)arg;
	put(c, data, len);
}

static void
sink_buf(struct ac_ctx *c, void *arg, const char *data, size_t len)
{
	(void)c;
	ac_buf_add(arg, data, len);
}

/* The status line and headers; content_length < 0 leaves it out (a streamed body). */
static void
head_write(struct ac_ctx *c, long long content_length, head_sink out, void *arg)
{
	struct ac_resp *r = &c->resp;
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "Status: %d %s\r\n", r->status, reason(r->status));
	out(c, arg, line, (size_t)n);
	if (r->status != 204 && r->status != 304) {
		n = snprintf(line, sizeof(line), "Content-Type: %s\r\n",
		    r->content_type != NULL ? r->content_type : "application/json");
		out(c, arg, line, (size_t)n);
		if (content_length >= 0) {
			n = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", content_length);
			out(c, arg, line, (size_t)n);
		}
	}
	if (c->log.request_id[0] != '\0') {
		n = snprintf(line, sizeof(line), "X-Request-Id: %s\r\n", c->log.request_id);
		out(c, arg, line, (size_t)n);
	}
	add_cors(c, &r->headers);
	out(c, arg, r->headers.data, r->headers.len);
	out(c, arg, "\r\n", 2);
}

/* Sends the status line and headers; content_length < 0 leaves it out (a streamed body). */
static void
send_head(struct ac_ctx *c, long long content_length)
{
	head_write(c, content_length, sink_put, NULL);
	c->resp.committed = true;
}

/* The body buffer's sink: a body past the window commits the head and goes out in pieces. */
static enum ac_err
stream_out(void *arg, const char *data, size_t len)
{
	struct ac_ctx *c = arg;

	if (!c->resp.committed)
		send_head(c, -1);
	if (c->req.method != AC_HEAD)
		put(c, data, len);
	return c->resp.failed ? AC_EIO : AC_OK;
}

void
ac_resp_init(struct ac_resp *r)
{
	memset(r, 0, sizeof(*r));
	ac_buf_init(&r->headers, 8192);
	ac_buf_init(&r->body, AC_RESP_WINDOW);
}

void
ac_resp_free(struct ac_resp *r)
{
	ac_buf_free(&r->headers);
	ac_buf_free(&r->body);
}

void
ac_resp_start(struct ac_ctx *c, int status)
{
	struct ac_resp *r = &c->resp;

	if (r->committed)
		return;
	r->status = status;
	r->content_type = NULL;
	ac_buf_reset(&r->headers, 8192);
	ac_buf_reset(&r->body, RESP_KEEP);
	ac_buf_set_sink(&r->body, stream_out, c);
}

void
ac_resp_header(struct ac_ctx *c, const char *name, const char *value)
{
	ac_buf_printf(&c->resp.headers, "%s: %s\r\n", name, value);
}

void
ac_resp_error(struct ac_ctx *c, int status, const char *detail)
{
	if (c->resp.committed) {
		/* Too late to change the answer: cut it short instead. */
		c->resp.failed = true;
		c->resp.abort = true;
		return;
	}
	ac_resp_start(c, status);
	ac_buf_add(&c->resp.body, "{\"detail\":", 10);
	ac_json_cstr(&c->resp.body, detail);
	ac_buf_addc(&c->resp.body, '}');
}

void
ac_resp_invalid(struct ac_ctx *c, const struct ac_verrs *v)
{
	ac_resp_start(c, 422);
	ac_verrs_write(v, &c->resp.body);
}

void
ac_resp_message_missing(struct ac_ctx *c, int64_t message_id)
{
	char detail[80];

	snprintf(detail, sizeof(detail), "Message with id '%lld' not found", (long long)message_id);
	ac_resp_error(c, 404, detail);
}

void
ac_resp_repo_error(struct ac_ctx *c, enum ac_err err, struct ac_str chat_id)
{
	struct ac_buf *b = &c->resp.body;

	if (c->resp.committed) {
		/* Too late to change the answer (a body streaming out): cut it short, never append. */
		c->resp.failed = true;
		c->resp.abort = true;
		return;
	}
	if (err == AC_ENOTFOUND) {
		ac_resp_start(c, 404);
		ac_buf_adds(b, "{\"detail\":\"Chat with id '");
		ac_json_escape(b, chat_id.ptr, chat_id.len);
		ac_buf_adds(b, "' not found\"}");
		return;
	}
	ac_resp_start(c, 503);
	ac_buf_adds(b, "{\"detail\":");
	if (err == AC_ENOMEM) {
		ac_json_cstr(b, "Out of memory");
	} else {
		char detail[320];

		snprintf(detail, sizeof(detail), "Database unavailable: %s", ac_repo_errmsg(c->repo));
		ac_json_cstr(b, detail);
	}
	ac_buf_addc(b, '}');
	ac_resp_header(c, "Retry-After", "1");
}

void
ac_resp_sse_head(struct ac_ctx *c, struct ac_buf *out)
{
	struct ac_resp *r = &c->resp;
	int status = r->status;
	const char *type = r->content_type;
	size_t kept = r->headers.len;

	r->status = 200;
	r->content_type = "text/event-stream";
	ac_resp_header(c, "Cache-Control", "no-cache");
	ac_resp_header(c, "X-Accel-Buffering", "no");
	head_write(c, -1, sink_buf, out);
	/* The answer itself is as it was. */
	r->status = status;
	r->content_type = type;
	r->headers.len = kept;
	if (r->headers.data != NULL)
		r->headers.data[kept] = '\0';
}

void
ac_resp_sse_begin(struct ac_ctx *c)
{
	struct ac_resp *r = &c->resp;

	/* Headers set before (Idempotent-Replayed) go out with the head. */
	if (r->committed)
		return;
	r->status = 200;
	r->content_type = "text/event-stream";
	ac_resp_header(c, "Cache-Control", "no-cache");
	ac_resp_header(c, "X-Accel-Buffering", "no");
	send_head(c, -1);
	if (!r->failed && ac_io_flush(c) < 0)
		r->failed = true;
}

static enum ac_err
sse_flush(struct ac_ctx *c)
{
	if (!c->resp.failed && ac_io_flush(c) < 0)
		c->resp.failed = true;
	return c->resp.failed ? AC_EIO : AC_OK;
}

enum ac_err
ac_resp_sse_event(struct ac_ctx *c, const char *event, const char *data, size_t len)
{
	if (event[0] != '\0') {
		put(c, "event: ", 7);
		put(c, event, strlen(event));
		put(c, "\n", 1);
	}
	put(c, "data: ", 6);
	put(c, data, len);	/* one line of JSON: its newlines are escaped */
	put(c, "\n\n", 2);
	return sse_flush(c);
}

enum ac_err
ac_resp_sse_comment(struct ac_ctx *c, const char *text)
{
	put(c, ": ", 2);
	put(c, text, strlen(text));
	put(c, "\n\n", 2);
	return sse_flush(c);
}

void
ac_resp_resume(struct ac_ctx *c, bool committed, bool failed)
{
	struct ac_resp *r = &c->resp;

	r->committed = false;
	ac_resp_start(c, 500);
	r->committed = committed;
	if (committed) {
		r->status = 200;
		r->content_type = "text/event-stream";
	}
	r->failed = failed;
	r->abort = false;
}

void
ac_resp_finish(struct ac_ctx *c)
{
	struct ac_resp *r = &c->resp;

	if (!r->committed && ac_buf_err(&r->body) != AC_OK)
		ac_resp_error(c, 500, "Internal error while writing the response");
	if (r->committed) {
		if (c->req.method != AC_HEAD && ac_buf_err(&r->body) == AC_OK)
			put(c, r->body.data, r->body.len);
		return;
	}
	send_head(c, r->status == 204 || r->status == 304 ? -1 : (long long)r->body.len);
	if (c->req.method != AC_HEAD && r->status != 204 && r->status != 304)
		put(c, r->body.data, r->body.len);
}
