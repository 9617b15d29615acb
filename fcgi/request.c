/* The request, from the FastCGI environment and input stream. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <strings.h>

#include "../common/json.h"
#include "../common/util.h"
#include "worker.h"

static const char *
param(struct ac_ctx *c, const char *name)
{
	const char *v = FCGX_GetParam(name, c->envp);

	return v != NULL && *v != '\0' ? v : NULL;
}

static enum ac_method
method_of(const char *m)
{
	static const struct {
		const char *name;
		enum ac_method method;
	} methods[] = {
		{ "GET", AC_GET }, { "HEAD", AC_HEAD }, { "POST", AC_POST }, { "PUT", AC_PUT },
		{ "PATCH", AC_PATCH }, { "DELETE", AC_DELETE }, { "OPTIONS", AC_OPTIONS },
	};

	for (size_t i = 0; m != NULL && i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(m, methods[i].name) == 0)
			return methods[i].method;
	}
	return AC_METHOD_OTHER;
}

/* An id we may send back in a header and log as it is: 1..64 of [A-Za-z0-9._:-]. */
static bool
request_id_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > AC_REQUEST_ID_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* 32 hex digits, like nginx's $request_id: a per-thread generator seeded from the kernel. */
static void
request_id_new(char out[33])
{
	static _Thread_local uint64_t state;
	static const char hex[] = "0123456789abcdef";

	if (state == 0 && getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state))
		state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&state;
	for (int half = 0; half < 2; half++) {
		/* splitmix64 */
		uint64_t z = (state += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		for (int i = 0; i < 16; i++)
			out[half * 16 + i] = hex[(z >> (i * 4)) & 0xf];
	}
	out[32] = '\0';
}

/*
 * The request's id: the client's X-Request-Id when TRUST_REQUEST_ID=1, else the web server's
 * (nginx's $request_id as REQUEST_ID, Apache's mod_unique_id as UNIQUE_ID), else one made here.
 */
static void
request_id(struct ac_ctx *c)
{
	const char *id = NULL;
	char made[33];

	if (c->cfg->trust_request_id)
		id = param(c, "HTTP_X_REQUEST_ID");
	if (!request_id_ok(id))
		id = param(c, "REQUEST_ID");
	if (!request_id_ok(id))
		id = param(c, "UNIQUE_ID");
	if (!request_id_ok(id)) {
		request_id_new(made);
		id = made;
	}
	snprintf(c->log.request_id, sizeof(c->log.request_id), "%s", id);
	ac_log_set_request_id(c->log.request_id);
}

bool
ac_request_parse(struct ac_ctx *c)
{
	struct ac_request *r = &c->req;
	const char *uri, *qmark, *qs, *cl;
	size_t path_len, qs_len;
	char *room;
	enum ac_err err;

	memset(r, 0, sizeof(*r));
	request_id(c);
	r->remote_addr = param(c, "REMOTE_ADDR");
	r->method_name = param(c, "REQUEST_METHOD");
	r->method = method_of(r->method_name);
	r->content_type = param(c, "CONTENT_TYPE");
	r->origin = param(c, "HTTP_ORIGIN");
	r->acr_method = param(c, "HTTP_ACCESS_CONTROL_REQUEST_METHOD");
	r->acr_headers = param(c, "HTTP_ACCESS_CONTROL_REQUEST_HEADERS");
	r->accept = param(c, "HTTP_ACCEPT");
	r->idempotency_key = param(c, "HTTP_IDEMPOTENCY_KEY");
	r->if_none_match = param(c, "HTTP_IF_NONE_MATCH");

	/* REQUEST_URI is the raw target; a server that sends none gets its PATH_INFO taken as one. */
	uri = param(c, "REQUEST_URI");
	if (uri == NULL)
		uri = param(c, "PATH_INFO");
	if (uri == NULL)
		uri = "/";
	if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
		const char *slash = strchr(strstr(uri, "//") + 2, '/');

		uri = slash != NULL ? slash : "/";
	}
	qmark = strchr(uri, '?');
	path_len = qmark != NULL ? (size_t)(qmark - uri) : strlen(uri);
	r->raw_path.ptr = uri;
	r->raw_path.len = path_len;
	qs = param(c, "QUERY_STRING");
	if (qs == NULL)
		qs = qmark != NULL ? qmark + 1 : "";
	qs_len = strlen(qs);
	if (path_len + qs_len > AC_TARGET_MAX) {
		ac_resp_error(c, 414, "Request target too long");
		return false;
	}
	room = ac_buf_room(&c->scratch, path_len + qs_len + 1);
	if (room == NULL) {
		ac_resp_error(c, 500, "Out of memory");
		return false;
	}
	if (ac_path_parse(uri, path_len, room, &r->path) != AC_OK) {
		ac_resp_error(c, 400, "Malformed request path");
		return false;
	}
	err = ac_query_parse(qs, qs_len, room + path_len, &r->query);
	if (err != AC_OK) {
		ac_resp_error(c, 400, err == AC_ETOOBIG ? "Too many query parameters" :
		    "Malformed query string");
		return false;
	}

	r->content_length = -1;
	cl = param(c, "CONTENT_LENGTH");
	if (cl != NULL) {
		int64_t n;

		if (ac_parse_i64(cl, strlen(cl), 0, INT64_MAX, &n) != AC_OK || cl[0] == '+' || cl[0] == '-') {
			ac_resp_error(c, 400, "Invalid Content-Length");
			return false;
		}
		r->content_length = (long long)n;
	}
	return true;
}

/* Reads the body into c->in: 0, or the status to answer (413 too large, 400 short, 499 cut off). */
static int
read_body(struct ac_ctx *c, size_t max)
{
	struct ac_request *r = &c->req;
	int n;

	if (r->content_length > (long long)max)
		return 413;	/* refused from its length: none of it is read */
	for (;;) {
		/* One byte past the limit tells a body that is too large. */
		size_t want = max + 1 - c->in.len;
		char *room;

		/* A CGI program reads CONTENT_LENGTH bytes, and none without it (RFC 3875 4.2): the
		 * server may keep stdin open after them. */
		if (c->cgi) {
			if (r->content_length < 0 || c->in.len >= (size_t)r->content_length) {
				n = 0;
				break;
			}
			if (want > (size_t)r->content_length - c->in.len)
				want = (size_t)r->content_length - c->in.len;
		}
		if (want > 65536)
			want = 65536;
		room = ac_buf_room(&c->in, want);
		if (room == NULL)
			return 500;
		n = ac_io_read(c, room, (int)want);
		if (n <= 0)
			break;
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		if (c->in.len > max)
			return 413;	/* the rest stays unread: the front end discards it */
	}
	if (n < 0 || !ac_io_read_complete(c))
		return 499;	/* the stream was cut before its end: never act on part of a body */
	if (r->content_length >= 0 && c->in.len < (size_t)r->content_length)
		return 400;
	r->body.ptr = c->in.data != NULL ? c->in.data : "";
	r->body.len = c->in.len;
	return 0;
}

bool
ac_request_json(struct ac_ctx *c, struct ac_verrs *v, bool required, struct json_object **obj)
{
	return ac_request_json_max(c, v, c->cfg->max_body, required, obj);
}

bool
ac_request_json_max(struct ac_ctx *c, struct ac_verrs *v, size_t max, bool required, struct json_object **obj)
{
	struct ac_json_error jerr;
	char detail[96];
	size_t keep_max = c->in.max;
	int status;

	*obj = NULL;
	if (c->req.content_type != NULL && !ac_http_is_json(c->req.content_type)) {
		ac_resp_error(c, 415, "Unsupported Media Type: send application/json");
		return false;
	}
	if (max + 2 > c->in.max)
		c->in.max = max + 2;	/* this request's limit (POST /import's is larger) */
	status = read_body(c, max);
	c->in.max = keep_max;
	if (status == 413) {
		snprintf(detail, sizeof(detail), "Request body too large: the limit is %zu bytes", max);
		ac_resp_error(c, 413, detail);
		return false;
	}
	if (status == 400 || status == 499) {
		/* A body cut off is the client's doing; it is gone, but answer as for a short one. */
		ac_resp_error(c, 400, status == 400 ? "Request body shorter than its Content-Length" :
		    "Request body cut off before its end");
		return false;
	}
	if (status != 0) {
		ac_resp_error(c, 500, "Out of memory");
		return false;
	}
	if (c->req.body.len == 0) {
		if (required)
			ac_verrs_add(v, "body", NULL, "field required", "value_error.missing", false, 0);
		return true;
	}
	if (ac_json_parse(c->req.body.ptr, c->req.body.len, obj, &jerr) != AC_OK)
		ac_verrs_add_decode(v, &jerr);
	return true;
}

bool
ac_request_object(struct ac_ctx *c, struct ac_verrs *v, bool required, struct json_object **obj)
{
	int before = v->count;

	if (!ac_request_json(c, v, required, obj))
		return false;
	/* JSON null parses to no object at all: not a dict either. */
	if (*obj == NULL && c->req.body.len > 0 && v->count == before) {
		ac_verrs_add(v, "body", NULL, "value is not a valid dict", "type_error.dict", false, 0);
		return true;
	}
	if (*obj != NULL && !json_object_is_type(*obj, json_type_object)) {
		json_object_put(*obj);
		*obj = NULL;
		ac_verrs_add(v, "body", NULL, "value is not a valid dict", "type_error.dict", false, 0);
	}
	return true;
}

bool
ac_request_form(struct ac_ctx *c, struct ac_query *form)
{
	const char *ct = c->req.content_type;
	char detail[96], *room;
	int status;

	memset(form, 0, sizeof(*form));
	if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
	    (ct[33] != '\0' && ct[33] != ';' && ct[33] != ' ')) {
		ac_resp_error(c, 415, "Unsupported Media Type: send application/x-www-form-urlencoded");
		return false;
	}
	status = read_body(c, c->cfg->max_body);
	if (status == 413) {
		snprintf(detail, sizeof(detail), "Request body too large: the limit is %zu bytes",
		    c->cfg->max_body);
		ac_resp_error(c, 413, detail);
		return false;
	}
	if (status == 400 || status == 499) {
		ac_resp_error(c, 400, status == 400 ? "Request body shorter than its Content-Length" :
		    "Request body cut off before its end");
		return false;
	}
	/* Decoded after the body itself, in the same buffer (which may move). */
	room = status == 0 ? ac_buf_room(&c->in, c->req.body.len + 1) : NULL;
	if (room == NULL) {
		ac_resp_error(c, 500, "Out of memory");
		return false;
	}
	c->req.body.ptr = c->in.data;
	if (ac_query_parse(c->req.body.ptr, c->req.body.len, room, form) != AC_OK) {
		ac_resp_error(c, 400, "Malformed form body");
		return false;
	}
	return true;
}
