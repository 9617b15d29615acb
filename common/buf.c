#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
ac_buf_init(struct ac_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
ac_buf_free(struct ac_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
ac_buf_reset(struct ac_buf *b, size_t keep_cap)
{
	if (b->cap > keep_cap) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
	b->err = AC_OK;
	b->sink = NULL;
	b->sink_arg = NULL;
}

void
ac_buf_set_sink(struct ac_buf *b, ac_buf_sink sink, void *arg)
{
	b->sink = sink;
	b->sink_arg = arg;
}

void
ac_buf_flush(struct ac_buf *b)
{
	enum ac_err err;

	if (b->err != AC_OK || b->sink == NULL || b->len == 0)
		return;
	err = b->sink(b->sink_arg, b->data, b->len);
	if (err != AC_OK) {
		b->err = err;
		return;
	}
	b->len = 0;
	b->data[0] = '\0';
}

/* Makes room for n more bytes (plus the terminating NUL). */
static int
reserve(struct ac_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->err != AC_OK)
		return -1;
	if (n > b->max || b->len > b->max - n) {
		if (b->sink != NULL && b->len > 0) {
			ac_buf_flush(b);
			if (b->err != AC_OK)
				return -1;
		}
		if (n > b->max || b->len > b->max - n) {
			if (b->sink == NULL) {
				b->err = AC_ETOOBIG;
				return -1;
			}
			/* One piece larger than the window: let it through whole. */
		}
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < need)
		cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->err = AC_ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

char *
ac_buf_room(struct ac_buf *b, size_t n)
{
	if (reserve(b, n) != 0)
		return NULL;
	return b->data + b->len;
}

void
ac_buf_add(struct ac_buf *b, const void *p, size_t n)
{
	if (reserve(b, n) != 0)
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
ac_buf_addc(struct ac_buf *b, char c)
{
	ac_buf_add(b, &c, 1);
}

void
ac_buf_adds(struct ac_buf *b, const char *s)
{
	ac_buf_add(b, s, strlen(s));
}

void
ac_buf_addi(struct ac_buf *b, long long v)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	ac_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void
ac_buf_printf(struct ac_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (b->err == AC_OK)
			b->err = AC_EINVAL;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		ac_buf_add(b, small, (size_t)n);
		return;
	}
	if (reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}
