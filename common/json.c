#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json.h"
#include "util.h"

static size_t utf8_seq(const unsigned char *p, const unsigned char *end);

/*
 * What json-c lets through: UTF-8 that is overlong or encodes a surrogate, control characters inside
 * strings, a raw NUL.  Returns the offset of the first such byte (with why), or len.
 */
static size_t
prescan(const char *data, size_t len, const char **why)
{
	const unsigned char *p = (const unsigned char *)data, *end = p + len;
	bool in_string = false, escaped = false;

	while (p < end) {
		unsigned char c = *p;

		if (c >= 0x80) {
			size_t n = utf8_seq(p, end);

			if (n == 0) {
				*why = "Invalid UTF-8";
				return (size_t)(p - (const unsigned char *)data);
			}
			p += n;
			escaped = false;
			continue;
		}
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			else if (c < 0x20) {
				*why = "Invalid control character in a string";
				return (size_t)(p - (const unsigned char *)data);
			}
		} else if (c == '"') {
			in_string = true;
		} else if (c == '\0') {
			*why = "Unexpected NUL byte";
			return (size_t)(p - (const unsigned char *)data);
		}
		p++;
	}
	return len;
}

enum ac_err
ac_json_parse(const char *data, size_t len, struct json_object **out, struct ac_json_error *err)
{
	const char *why = NULL;
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	enum ac_err rc = AC_EINVAL;
	size_t end;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (len > INT32_MAX - 1) {
		snprintf(err->msg, sizeof(err->msg), "Document too large");
		return AC_ETOOBIG;
	}
	err->offset = prescan(data, len, &why);
	if (err->offset < len) {
		snprintf(err->msg, sizeof(err->msg), "%s", why);
		return AC_EINVAL;
	}
	err->offset = 0;
	tok = json_tokener_new_ex(AC_JSON_MAX_DEPTH);
	if (tok == NULL) {
		rc = AC_ENOMEM;
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* The terminating NUL (data[len] is readable: callers hold NUL-terminated buffers) tells
	 * json-c the input ended, so a bare number at the top level completes. */
	obj = json_tokener_parse_ex(tok, data, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	if (jerr != json_tokener_success) {
		err->offset = json_tokener_get_parse_end(tok);
		if (err->offset > len)
			err->offset = len;
		if (jerr == json_tokener_continue)
			snprintf(err->msg, sizeof(err->msg), "Unexpected end of input");
		else
			snprintf(err->msg, sizeof(err->msg), "%s", json_tokener_error_desc(jerr));
		goto out;
	}
	end = json_tokener_get_parse_end(tok);
	while (end < len && strchr(" \t\r\n", data[end]) != NULL)
		end++;
	if (end < len) {
		err->offset = end;
		snprintf(err->msg, sizeof(err->msg), "Extra data after the JSON value");
		goto out;
	}
	*out = obj;
	obj = NULL;
	rc = AC_OK;
out:
	json_object_put(obj);
	if (tok != NULL)
		json_tokener_free(tok);
	return rc;
}

struct ac_str
ac_json_get_str(struct json_object *o)
{
	struct ac_str s;

	s.ptr = json_object_get_string(o);
	s.len = (size_t)json_object_get_string_len(o);
	return s;
}

/* 0: copy as is; 1: escape as \uXXXX; other: the letter after a backslash. */
static const unsigned char esc[256] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
	[0x07] = 1, [0x0b] = 1, [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1,
	[0x13] = 1, [0x14] = 1, [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1,
	[0x1a] = 1, [0x1b] = 1, [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [0x7f] = 1,
	['"'] = '"', ['\\'] = '\\',
};

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is malformed. */
static size_t
utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t n;

	if (*p < 0xc2)
		return 0;
	n = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : *p < 0xf5 ? 4 : 0;
	if (n == 0 || (size_t)(end - p) < n)
		return 0;
	return ac_utf8_count((const char *)p, n, NULL) ? n : 0;
}

/* Whether any of the 8 bytes at p needs a look: a control, '"', '\\', DEL or a non-ASCII byte. */
static bool
word_is_plain(const unsigned char *p)
{
	uint64_t w, ctl, quote, bslash;
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;

	memcpy(&w, p, 8);
	ctl = (w - ones * 0x20) & ~w;			/* bytes < 0x20 (and >= 0x80) */
	quote = ((w ^ (ones * '"')) - ones) & ~(w ^ (ones * '"'));
	bslash = ((w ^ (ones * '\\')) - ones) & ~(w ^ (ones * '\\'));
	return ((ctl | quote | bslash | w | (w + ones)) & highs) == 0;	/* w + 1: catches 0x7f */
}

void
ac_json_escape(struct ac_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	const unsigned char *run = p;

	while (p < end) {
		unsigned char c;

		/* Plain text goes eight bytes at a time. */
		while (end - p >= 8 && word_is_plain(p))
			p += 8;
		if (p == end)
			break;
		c = *p;

		if (c < 0x80 && esc[c] == 0) {
			p++;
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(p, end);

			if (n > 0) {
				p += n;
				continue;
			}
		}
		ac_buf_add(b, run, (size_t)(p - run));
		if (c >= 0x80) {
			ac_buf_add(b, "\xef\xbf\xbd", 3);	/* U+FFFD */
		} else if (esc[c] == 1) {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

			ac_buf_add(b, u, sizeof(u));
		} else {
			char e[2] = { '\\', (char)esc[c] };

			ac_buf_add(b, e, sizeof(e));
		}
		run = ++p;
	}
	ac_buf_add(b, run, (size_t)(p - run));
}

void
ac_json_str(struct ac_buf *b, const char *s, size_t len)
{
	ac_buf_addc(b, '"');
	ac_json_escape(b, s, len);
	ac_buf_addc(b, '"');
}

void
ac_json_cstr(struct ac_buf *b, const char *s)
{
	ac_json_str(b, s, strlen(s));
}
