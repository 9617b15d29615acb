/*
 * JSON: parsing request bodies through json-c with bounds, and writing responses straight into a
 * buffer (strings carry their lengths, so "\u0000" survives both ways).
 */
#ifndef AC_JSON_H
#define AC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"
#include "err.h"

#define AC_JSON_MAX_DEPTH 64	/* deepest nesting accepted in a request body */

struct ac_json_error {
	char msg[128];
	size_t offset;		/* byte offset in the input where parsing stopped */
};

/*
 * Parses len bytes as one JSON value: strict syntax, valid UTF-8, at most AC_JSON_MAX_DEPTH deep,
 * nothing but whitespace after it.  On success *out holds a new reference (json_object_put it).
 * On AC_EINVAL, err says what and where.
 */
enum ac_err ac_json_parse(const char *data, size_t len, struct json_object **out,
    struct ac_json_error *err);

/* The string value of a json-c string object, with its length. */
struct ac_str ac_json_get_str(struct json_object *o);

/* Appends s as a quoted JSON string; bytes that are not valid UTF-8 become U+FFFD. */
void ac_json_escape(struct ac_buf *b, const char *s, size_t len);	/* without the quotes */
void ac_json_str(struct ac_buf *b, const char *s, size_t len);
void ac_json_cstr(struct ac_buf *b, const char *s);

#endif
