/*
 * Request validation with FastAPI's 422 error list:
 *   {"detail": [{"loc": ["body", "user_id"], "msg": "field required", "type": "value_error.missing"}]}
 * Each check either yields a typed value or appends one entry to the list; a handler runs all its
 * checks, then answers 422 with the list when it is not empty.
 */
#ifndef AC_VALID_H
#define AC_VALID_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"
#include "json.h"

struct ac_verrs {
	struct ac_buf list;	/* the entries, comma-separated, without the brackets */
	int count;
};

void ac_verrs_init(struct ac_verrs *v);
void ac_verrs_free(struct ac_verrs *v);

/*
 * Appends one entry.  where is "body", "query" or "path"; field may be NULL (the whole body);
 * limit_key/limit_value add "ctx": {"limit_value": n} when limit_key is not NULL.
 */
void ac_verrs_add(struct ac_verrs *v, const char *where, const char *field, const char *msg,
    const char *type, bool has_limit, int64_t limit_value);

/* Appends the entry for a body that did not parse: loc ["body", offset], type value_error.jsondecode. */
void ac_verrs_add_decode(struct ac_verrs *v, const struct ac_json_error *err);

/* Writes {"detail": [...]} to out. */
void ac_verrs_write(const struct ac_verrs *v, struct ac_buf *out);

/* Bounds on a string value, in characters. */
struct ac_strspec {
	const char *name;
	bool required;		/* absent is an error (else *present says) */
	bool nullable;		/* JSON null is accepted (as absent) */
	size_t min_chars;
	size_t max_chars;
};

/*
 * A string member of a JSON object body.  Returns true with *out set when the member is a string
 * within bounds; false otherwise (with *present false when it is absent or null and allowed to be,
 * in which case no error is added).
 */
bool ac_valid_body_str(struct ac_verrs *v, struct json_object *body, const struct ac_strspec *spec,
    struct ac_str *out, bool *present);

/* A string query or path value (where: "query" or "path"); value NULL means absent. */
bool ac_valid_str(struct ac_verrs *v, const char *where, const struct ac_strspec *spec,
    const struct ac_str *value, struct ac_str *out);

/* An integer query value within [min, max]; absent (value NULL) gives def. */
bool ac_valid_int(struct ac_verrs *v, const char *name, const struct ac_str *value, int64_t def,
    int64_t min, int64_t max, int64_t *out);

/* A boolean query value (true/false, 1/0, yes/no, on/off, any case); absent gives def. */
bool ac_valid_bool(struct ac_verrs *v, const char *name, const struct ac_str *value, bool def,
    bool *out);

#endif
