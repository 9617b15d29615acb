/*
 * A parser for server-sent events (the provider's stream): bytes in, one callback per event's data.
 * Lines end with \n, \r\n or \r; "data:" lines of one event are joined with \n; comments and other
 * fields are skipped.  Lines and events are bounded.
 */
#ifndef AC_SSE_H
#define AC_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct ac_sse {
	struct ac_buf line;	/* the line being read */
	struct ac_buf data;	/* the event being assembled */
	bool has_data;
	bool after_cr;		/* the last byte was \r: a following \n belongs to it */
};

typedef enum ac_err (*ac_sse_fn)(void *arg, const char *data, size_t len);

/* max bounds one line and one event's data (AC_ETOOBIG past it). */
void ac_sse_init(struct ac_sse *s, size_t max);
void ac_sse_free(struct ac_sse *s);
void ac_sse_reset(struct ac_sse *s);

/* Feeds bytes; fn is called for each complete event.  Returns fn's first error, or AC_ETOOBIG. */
enum ac_err ac_sse_feed(struct ac_sse *s, const char *buf, size_t len, ac_sse_fn fn, void *arg);

#endif
