#include <string.h>
#include <strings.h>

#include "http.h"

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum ac_err
ac_http_decode(const char *s, size_t len, bool plus_space, char *out, size_t *out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return AC_EINVAL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return AC_EINVAL;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_space) {
			out[o++] = ' ';
		} else {
			out[o++] = (char)c;
		}
	}
	*out_len = o;
	return AC_OK;
}

enum ac_err
ac_path_parse(const char *raw, size_t len, char *scratch, struct ac_path *p)
{
	size_t i = 0;

	p->count = 0;
	if (len == 0 || raw[0] != '/')
		return AC_EINVAL;
	if (len == 1)
		return AC_OK;	/* "/": no segments */
	while (i < len) {
		size_t start = ++i, n;	/* skip the '/' */
		const char *slash = memchr(raw + start, '/', len - start);
		size_t end = slash != NULL ? (size_t)(slash - raw) : len;

		if (ac_http_decode(raw + start, end - start, false, scratch, &n) != AC_OK)
			return AC_EINVAL;
		if (memchr(scratch, '\0', n) != NULL)
			return AC_EINVAL;	/* %00: no path holds a NUL (nginx refuses it too) */
		if (p->count < AC_PATH_MAX_SEGMENTS) {
			p->seg[p->count].ptr = scratch;
			p->seg[p->count].len = n;
		}
		p->count++;
		scratch += n;
		i = end;
	}
	return AC_OK;
}

enum ac_err
ac_query_parse(const char *raw, size_t len, char *scratch, struct ac_query *q)
{
	size_t i = 0;

	q->count = 0;
	while (i < len) {
		const char *amp = memchr(raw + i, '&', len - i);
		size_t end = amp != NULL ? (size_t)(amp - raw) : len;
		const char *eq = memchr(raw + i, '=', end - i);
		size_t name_end = eq != NULL ? (size_t)(eq - raw) : end;
		size_t n;

		if (end > i) {
			if (q->count == AC_QUERY_MAX_PARAMS)
				return AC_ETOOBIG;
			if (ac_http_decode(raw + i, name_end - i, true, scratch, &n) != AC_OK)
				return AC_EINVAL;
			q->name[q->count].ptr = scratch;
			q->name[q->count].len = n;
			scratch += n;
			if (eq != NULL) {
				if (ac_http_decode(eq + 1, end - name_end - 1, true, scratch, &n) != AC_OK)
					return AC_EINVAL;
			} else {
				n = 0;
			}
			q->value[q->count].ptr = scratch;
			q->value[q->count].len = n;
			scratch += n;
			q->count++;
		}
		i = end + 1;
	}
	return AC_OK;
}

const struct ac_str *
ac_query_get(const struct ac_query *q, const char *name)
{
	size_t len = strlen(name);

	for (int i = q->count - 1; i >= 0; i--) {
		if (q->name[i].len == len && memcmp(q->name[i].ptr, name, len) == 0)
			return &q->value[i];
	}
	return NULL;
}

bool
ac_http_is_json(const char *ct)
{
	size_t len;
	const char *semi;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	semi = strchr(ct, ';');
	len = semi != NULL ? (size_t)(semi - ct) : strlen(ct);
	while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
		len--;
	if (len == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	/* application/<anything>+json, such as application/merge-patch+json */
	return len > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	    strncasecmp(ct + len - 5, "+json", 5) == 0 && memchr(ct + 12, '/', len - 12) == NULL;
}
