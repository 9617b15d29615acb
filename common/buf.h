/*
 * Growable byte buffers with a maximum size (after curl's dynbuf).
 *
 * Errors are sticky: the first failed append records its error in the buffer and later appends do
 * nothing, so a writer can append many pieces and check ac_buf_err() once at the end.
 *
 * A buffer may have a sink: when an append would pass the maximum, the buffered bytes are handed to
 * the sink and the buffer starts again empty (used to stream large responses in bounded memory).
 * Without a sink, passing the maximum is AC_ETOOBIG.
 */
#ifndef AC_BUF_H
#define AC_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

typedef enum ac_err (*ac_buf_sink)(void *arg, const char *data, size_t len);

struct ac_buf {
	char *data;		/* always NUL-terminated after data[len] when data != NULL */
	size_t len;
	size_t cap;
	size_t max;		/* most bytes held at once */
	enum ac_err err;	/* first failure, sticky */
	ac_buf_sink sink;
	void *sink_arg;
};

/* A string with its length: may hold NUL bytes. */
struct ac_str {
	const char *ptr;
	size_t len;
};

#define AC_STR(lit) ((struct ac_str){ (lit), sizeof(lit) - 1 })

void ac_buf_init(struct ac_buf *b, size_t max);
void ac_buf_free(struct ac_buf *b);
/* Empties the buffer and clears its error and sink; keeps memory up to keep_cap bytes. */
void ac_buf_reset(struct ac_buf *b, size_t keep_cap);
void ac_buf_set_sink(struct ac_buf *b, ac_buf_sink sink, void *arg);

void ac_buf_add(struct ac_buf *b, const void *p, size_t n);
void ac_buf_addc(struct ac_buf *b, char c);
void ac_buf_adds(struct ac_buf *b, const char *s);
void ac_buf_addi(struct ac_buf *b, long long v);
void ac_buf_printf(struct ac_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Room for n more bytes after the current contents, without changing the length (NULL on failure,
 * with the error recorded).  The pointer is valid until the next append.
 */
char *ac_buf_room(struct ac_buf *b, size_t n);

/* Hands what is buffered to the sink now (no-op without one). */
void ac_buf_flush(struct ac_buf *b);

static inline enum ac_err
ac_buf_err(const struct ac_buf *b)
{
	return b->err;
}

#endif
