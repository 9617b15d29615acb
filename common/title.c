/* A chat's automatic title from the model's text (title.h). */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "title.h"

/* Quotes and marks taken off either end: ASCII ones, and the typographic quotes. */
static size_t
mark_at(const unsigned char *p, size_t n)
{
	static const char *const wide[] = { "\xe2\x80\x9c", "\xe2\x80\x9d", "\xe2\x80\x98", "\xe2\x80\x99",
	    "\xc2\xab", "\xc2\xbb" };

	if (n == 0)
		return 0;
	if (strchr("\"'`*#_", p[0]) != NULL)
		return 1;
	for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
		size_t k = strlen(wide[i]);

		if (n >= k && memcmp(p, wide[i], k) == 0)
			return k;
	}
	return 0;
}

/* The length of the mark ending at p[n-1] (0: none), end punctuation included. */
static size_t
mark_before(const unsigned char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (strchr(".!?,;:", p[n - 1]) != NULL)
		return 1;
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		if (mark_at(p + n - k, k) == k)
			return k;
	}
	return 0;
}

static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

size_t
ac_title_clean(const char *text, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	const unsigned char *line = NULL, *line_end = NULL;
	size_t o = 0, chars = 0, words = 0, cut = 0, k;
	bool space = false;

	out[0] = '\0';
	/* The first line with something in it besides marks. */
	while (p < end && line == NULL) {
		const unsigned char *e = memchr(p, '\n', (size_t)(end - p));
		const unsigned char *a = p, *b = e != NULL ? e : end;

		p = e != NULL ? e + 1 : end;
		for (;;) {
			while (a < b && is_space(*a))
				a++;
			while (b > a && is_space(b[-1]))
				b--;
			if ((k = mark_at(a, (size_t)(b - a))) > 0) {
				a += k;
				continue;
			}
			if ((size_t)(b - a) >= 6 && strncasecmp((const char *)a, "title:", 6) == 0) {
				a += 6;
				continue;
			}
			if ((k = mark_before(a, (size_t)(b - a))) > 0) {
				b -= k;
				continue;
			}
			break;
		}
		if ((size_t)(b - a) == 5 && strncasecmp((const char *)a, "title", 5) == 0)
			a = b;	/* a heading, the title on a line of its own below */
		if (a < b) {
			line = a;
			line_end = b;
		}
	}
	if (line == NULL)
		return 0;
	for (p = line; p < line_end; p++) {
		unsigned char c = *p;

		if (o + 2 >= AC_TITLE_BYTES)
			break;	/* bytes that are not UTF-8 */
		if (is_space(c) || c < 0x20 || c == 0x7f) {
			space = o > 0;
			continue;
		}
		if (space) {
			if (words + 1 == AC_TITLE_MAX_WORDS)
				break;
			if (chars + 1 >= AC_TITLE_MAX_CHARS)
				break;
			cut = o;
			out[o++] = ' ';
			chars++;
			words++;
			space = false;
		}
		if ((c & 0xc0) != 0x80) {
			if (chars == AC_TITLE_MAX_CHARS) {
				/* Too long: back to the last word's end, if there is one. */
				if (cut > 0)
					o = cut;
				break;
			}
			chars++;
		}
		out[o++] = (char)c;
	}
	/* What the cut left at the end: marks and punctuation. */
	while (o > 0 && ((k = mark_before((const unsigned char *)out, o)) > 0 || out[o - 1] == ' '))
		o -= k > 0 ? k : 1;
	out[o] = '\0';
	return o;
}
