/*
 * One request in the worker: what was asked (struct ac_request, read from the FastCGI environment),
 * what is answered (struct ac_resp), and the per-thread context that carries both with the thread's
 * database connection.
 */
#ifndef AC_WORKER_H
#define AC_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <fcgiapp.h>
#include <json-c/json.h>

#include "../common/buf.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/provider.h"
#include "../common/repo.h"
#include "../common/valid.h"
#include "http.h"

#define AC_RESP_WINDOW (256 * 1024)	/* a body larger than this is streamed out in pieces */
#define AC_AFTER_MAX 4			/* jobs run after a response */

enum ac_method {
	AC_GET,
	AC_HEAD,
	AC_POST,
	AC_PUT,
	AC_PATCH,
	AC_DELETE,
	AC_OPTIONS,
	AC_METHOD_OTHER,
};

struct ac_request {
	enum ac_method method;
	const char *method_name;	/* as sent (the log's) */
	struct ac_str raw_path;		/* the target's path, still percent-encoded (the log's) */
	struct ac_path path;
	struct ac_query query;
	const char *content_type;	/* NULL when absent or empty */
	long long content_length;	/* -1 when absent */
	const char *origin;		/* the CORS headers, NULL when absent */
	const char *acr_method;
	const char *acr_headers;
	const char *accept;
	const char *idempotency_key;
	const char *if_none_match;	/* conditional GETs (handlers.c) */
	const char *remote_addr;	/* REMOTE_ADDR, NULL when absent */
	struct ac_str body;
};

struct ac_resp {
	int status;
	const char *content_type;	/* NULL: application/json */
	struct ac_buf headers;	/* extra "Name: value\r\n" lines */
	struct ac_buf body;
	bool committed;		/* the head has been sent: the body is streaming */
	bool failed;		/* the client went away, or the answer was cut short */
	bool abort;		/* cut short after the head went out: end the connection, not the response,
				 * so that the client sees the answer is incomplete */
};

struct ac_ctx;

/* Work that runs once the answer has gone (after FCGX_Finish_r), in order. */
struct ac_after {
	struct {
		void (*fn)(struct ac_ctx *c, void *arg);
		void *arg;
	} job[AC_AFTER_MAX];
	int count;
};

/* What the request line in the log says besides method, path, status. */
struct ac_logline {
	char user_id[256];	/* a copy: the request's own strings are gone when it is logged */
	size_t user_id_len;	/* 0: none */
	const char *model;	/* a string of the configuration */
	int64_t prompt_tokens;
	int64_t completion_tokens;
	const char *route;	/* the route's template ("/chats/{chat_id}"), NULL: none matched */
	char request_id[AC_REQUEST_ID_MAX + 1];	/* X-Request-Id (request.c) */
};

struct ac_park;

/* The request's account, once identity.c has authenticated it (AUTH=token or remote-user). */
struct ac_who {
	bool known;
	bool admin;
	bool has_password;
	char id[256];
	size_t id_len;
	char email[256];
	size_t email_len;
	int64_t created_at;
};

struct ac_ctx {
	const struct ac_config *cfg;
	struct ac_repo *repo;
	struct ac_provider *provider;
	FCGX_Request fcgi;
	bool cgi;		/* plain CGI: the environment, stdin and stdout instead of fcgi */
	char **envp;		/* the request's parameters */
	struct ac_request req;
	struct ac_resp resp;
	struct ac_buf scratch;	/* decoded path and query */
	struct ac_buf in;	/* the request body */
	struct ac_after after;
	struct ac_logline log;
	struct ac_who who;	/* reset by ac_route for every request */
	int64_t started;	/* ac_mono_us() when the request began */
	/*
	 * The event loop (loop.c).  parked: the request was handed to the loop, which owns its
	 * connection now (the thread forgets it).  park: while this thread finishes a parked request
	 * (stores its reply and answers), the request whose output ac_io_write queues for the loop.
	 */
	bool parked;
	struct ac_park *park;
};

/* Notes the request's user for its log line. */
static inline void
ac_log_user(struct ac_ctx *c, struct ac_str user_id)
{
	size_t n = user_id.len < sizeof(c->log.user_id) ? user_id.len : sizeof(c->log.user_id);

	memcpy(c->log.user_id, user_id.ptr, n);
	c->log.user_id_len = n;
}

/*
 * Runs fn(c, arg) on this thread once the request's answer has gone to the client (in the order
 * given; fn owns arg, and frees it).  For work the client must not wait for.  false (fn will not
 * run) when the request has AC_AFTER_MAX jobs already.
 */
bool ac_after_response(struct ac_ctx *c, void (*fn)(struct ac_ctx *c, void *arg), void *arg);
/* server.c: runs the request's after-response job, if any. */
void ac_run_after(struct ac_ctx *c);
/* server.c: the request's line in the log (method, path, status, duration since started, ...), and
 * its figures in the metrics. */
void ac_log_request(struct ac_ctx *c, int64_t started);
/*
 * server.c: runs fn(c, arg) on a thread of the pool, with that thread's context (its database
 * connection), as soon as one is free; from any thread.  For the event loop, which must never
 * block on the database.  false when out of memory (fn will not run).
 */
bool ac_server_post(void (*fn)(struct ac_ctx *c, void *arg), void *arg);
/* The same for a parked request's after-response jobs: not counted against the few threads the
 * finishes may hold at once (such a job may wait: a reply stored late, a call to the model). */
bool ac_server_post_after(void (*fn)(struct ac_ctx *c, void *arg), void *arg);
/* server.c: a connection the web server asked to keep, handed back by the loop once its request
 * is answered: a thread of the pool reads its next request.  fd is blocking again. */
void ac_server_keep(int fd);

/* ---- io.c: the request's input and output, over FastCGI or CGI ---- */

/* Bytes of the body read into buf (0 at its end, -1 on error). */
int ac_io_read(struct ac_ctx *c, char *buf, int len);
/* Writes all of buf; -1 when the client has gone away. */
int ac_io_write(struct ac_ctx *c, const char *buf, int len);
/* Sends what is buffered now; -1 when the client has gone away. */
int ac_io_flush(struct ac_ctx *c);
/* After ac_io_read returned 0: whether the input really ended (1), rather than being cut off (0). */
int ac_io_read_complete(struct ac_ctx *c);

/* ---- request.c ---- */

/* Reads the request line and headers from the FastCGI environment; answers 400/414 itself. */
bool ac_request_parse(struct ac_ctx *c);

/*
 * The body as JSON: checks the Content-Type (415), reads at most MAX_BODY_BYTES (413) and parses it.
 * Returns false when it has answered (415, 413, 400); otherwise true with *obj the parsed value, or
 * NULL with the reason added to v (malformed body, or an empty one when required).
 */
bool ac_request_json(struct ac_ctx *c, struct ac_verrs *v, bool required, struct json_object **obj);

/* The same with a limit of max bytes instead of MAX_BODY_BYTES. */
bool ac_request_json_max(struct ac_ctx *c, struct ac_verrs *v, size_t max, bool required, struct json_object **obj);

/* As ac_request_json, for a body that must be a JSON object: another value adds "value is not a
 * valid dict" to v and leaves *obj NULL. */
bool ac_request_object(struct ac_ctx *c, struct ac_verrs *v, bool required, struct json_object **obj);

/*
 * The body as an HTML form (application/x-www-form-urlencoded; 415 otherwise), decoded into form.
 * Returns false when it has answered (415, 413, 400).
 */
bool ac_request_form(struct ac_ctx *c, struct ac_query *form);

/* ---- response.c ---- */

void ac_resp_init(struct ac_resp *r);
void ac_resp_free(struct ac_resp *r);
void ac_resp_start(struct ac_ctx *c, int status);
void ac_resp_header(struct ac_ctx *c, const char *name, const char *value);
/* Answers {"detail": "<detail>"} with status, replacing anything started. */
void ac_resp_error(struct ac_ctx *c, int status, const char *detail);
/* Answers the 422 list. */
void ac_resp_invalid(struct ac_ctx *c, const struct ac_verrs *v);
/* Answers 503 for a failed repository call (or 404 with the chat detail for AC_ENOTFOUND). */
void ac_resp_repo_error(struct ac_ctx *c, enum ac_err err, struct ac_str chat_id);
/* Answers 404 {"detail": "Message with id '<id>' not found"}. */
void ac_resp_message_missing(struct ac_ctx *c, int64_t message_id);
/*
 * A server-sent event stream: the head goes out at once (text/event-stream, no caching, no proxy
 * buffering); each event is flushed as it is written.  AC_EIO when the client has gone away.
 */
void ac_resp_sse_begin(struct ac_ctx *c);
/* An event; an event name of "" writes an unnamed one (only "data: ...", as OpenAI's streams). */
enum ac_err ac_resp_sse_event(struct ac_ctx *c, const char *event, const char *data, size_t len);
/* The head ac_resp_sse_begin would send, rendered into out instead (to be sent later, by the event
 * loop: a stream whose head waits for the first piece of the reply). */
void ac_resp_sse_head(struct ac_ctx *c, struct ac_buf *out);
enum ac_err ac_resp_sse_comment(struct ac_ctx *c, const char *text);

/* Sends what is pending, adding CORS headers; the request is complete after it. */
void ac_resp_finish(struct ac_ctx *c);
/* A parked request taken up again on another thread to be answered: its head went out already when
 * committed, and failed says the client is gone. */
void ac_resp_resume(struct ac_ctx *c, bool committed, bool failed);

/* ---- router.c ---- */

/* Answers the request in c (parsed already). */
void ac_route(struct ac_ctx *c);

/* The routes' templates ("/chats/{chat_id}"), at most max of them into out; how many. */
int ac_routes_names(const char **out, int max);

/* Prints the routes, one "METHOD /path/{param}" a line (HEAD, answered wherever GET is, left out). */
void ac_routes_print(FILE *f);

#endif
