/*
 * Parsing the parts of a request that arrive as text: the path and query string (percent-decoding)
 * and the Content-Type.  Pure functions over buffers; nothing here knows FastCGI.
 */
#ifndef AC_HTTP_H
#define AC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/buf.h"
#include "../common/err.h"

#define AC_PATH_MAX_SEGMENTS 8		/* deeper paths match no route */
#define AC_QUERY_MAX_PARAMS 64		/* more is a 400 */
#define AC_TARGET_MAX (16 * 1024)	/* longest path plus query string: more is a 414 */

struct ac_path {
	int count;			/* segments; > AC_PATH_MAX_SEGMENTS: too deep to match */
	struct ac_str seg[AC_PATH_MAX_SEGMENTS];
};

struct ac_query {
	int count;
	struct ac_str name[AC_QUERY_MAX_PARAMS];
	struct ac_str value[AC_QUERY_MAX_PARAMS];
};

/*
 * Percent-decodes len bytes of s into out (room for len bytes), "+" as a space when plus_space.
 * AC_EINVAL on a "%" not followed by two hex digits.
 */
enum ac_err ac_http_decode(const char *s, size_t len, bool plus_space, char *out, size_t *out_len);

/* Splits an absolute path ("/chats/x") into decoded segments; scratch has room for len bytes.
 * AC_EINVAL for bad percent-encoding or an encoded NUL. */
enum ac_err ac_path_parse(const char *raw, size_t len, char *scratch, struct ac_path *p);

/* Splits a query string into decoded name/value pairs; scratch has room for len bytes. */
enum ac_err ac_query_parse(const char *raw, size_t len, char *scratch, struct ac_query *q);

/* The value of the last parameter called name, or NULL. */
const struct ac_str *ac_query_get(const struct ac_query *q, const char *name);

/* Whether a Content-Type names JSON: application/json or application/<x>+json, parameters ignored. */
bool ac_http_is_json(const char *content_type);

#endif
