#include <string.h>

#include "sse.h"

void
ac_sse_init(struct ac_sse *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	ac_buf_init(&s->line, max);
	ac_buf_init(&s->data, max);
}

void
ac_sse_free(struct ac_sse *s)
{
	ac_buf_free(&s->line);
	ac_buf_free(&s->data);
}

void
ac_sse_reset(struct ac_sse *s)
{
	ac_buf_reset(&s->line, 64 * 1024);
	ac_buf_reset(&s->data, 64 * 1024);
	s->has_data = false;
	s->after_cr = false;
}

/* One complete line (without its end). */
static enum ac_err
line(struct ac_sse *s, ac_sse_fn fn, void *arg)
{
	const char *p = s->line.data != NULL ? s->line.data : "";
	size_t len = s->line.len;
	enum ac_err err = AC_OK;

	if (len == 0) {
		/* A blank line ends the event. */
		if (s->has_data)
			err = fn(arg, s->data.data != NULL ? s->data.data : "", s->data.len);
		s->data.len = 0;
		s->has_data = false;
		return err;
	}
	if (len >= 5 && memcmp(p, "data:", 5) == 0) {
		p += 5;
		len -= 5;
		if (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		if (s->has_data)
			ac_buf_addc(&s->data, '\n');
		ac_buf_add(&s->data, p, len);
		s->has_data = true;
		return ac_buf_err(&s->data);
	}
	return AC_OK;	/* a comment (":"), or event:, id:, retry: */
}

enum ac_err
ac_sse_feed(struct ac_sse *s, const char *buf, size_t len, ac_sse_fn fn, void *arg)
{
	size_t i = 0;
	enum ac_err err;

	while (i < len) {
		const char *nl;
		size_t run = 0;

		if (s->after_cr && buf[i] == '\n') {
			s->after_cr = false;
			i++;
			continue;
		}
		s->after_cr = false;
		/* The rest of this line: up to the next \r or \n. */
		while (i + run < len && buf[i + run] != '\n' && buf[i + run] != '\r')
			run++;
		ac_buf_add(&s->line, buf + i, run);
		if (ac_buf_err(&s->line) != AC_OK)
			return ac_buf_err(&s->line);
		i += run;
		if (i == len)
			break;
		nl = buf + i;
		s->after_cr = *nl == '\r';
		i++;
		err = line(s, fn, arg);
		s->line.len = 0;
		if (err != AC_OK)
			return err;
	}
	return AC_OK;
}
