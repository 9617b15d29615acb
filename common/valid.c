#include <strings.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "valid.h"

#define AC_VERRS_MAX (64 * 1024)	/* the error list of one request never grows past this */

void
ac_verrs_init(struct ac_verrs *v)
{
	ac_buf_init(&v->list, AC_VERRS_MAX);
	v->count = 0;
}

void
ac_verrs_free(struct ac_verrs *v)
{
	ac_buf_free(&v->list);
}

static void
entry_open(struct ac_verrs *v, const char *where)
{
	if (v->count++ > 0)
		ac_buf_addc(&v->list, ',');
	ac_buf_add(&v->list, "{\"loc\":[", 8);
	ac_json_cstr(&v->list, where);
}

static void
entry_close(struct ac_verrs *v, const char *msg, const char *type, bool has_limit, int64_t limit)
{
	ac_buf_add(&v->list, "],\"msg\":", 8);
	ac_json_cstr(&v->list, msg);
	ac_buf_add(&v->list, ",\"type\":", 8);
	ac_json_cstr(&v->list, type);
	if (has_limit) {
		ac_buf_adds(&v->list, ",\"ctx\":{\"limit_value\":");
		ac_buf_addi(&v->list, limit);
		ac_buf_addc(&v->list, '}');
	}
	ac_buf_addc(&v->list, '}');
}

void
ac_verrs_add(struct ac_verrs *v, const char *where, const char *field, const char *msg,
    const char *type, bool has_limit, int64_t limit_value)
{
	entry_open(v, where);
	if (field != NULL) {
		ac_buf_addc(&v->list, ',');
		ac_json_cstr(&v->list, field);
	}
	entry_close(v, msg, type, has_limit, limit_value);
}

void
ac_verrs_add_decode(struct ac_verrs *v, const struct ac_json_error *err)
{
	entry_open(v, "body");
	ac_buf_addc(&v->list, ',');
	ac_buf_addi(&v->list, (long long)err->offset);
	entry_close(v, err->msg, "value_error.jsondecode", false, 0);
}

void
ac_verrs_write(const struct ac_verrs *v, struct ac_buf *out)
{
	ac_buf_add(out, "{\"detail\":[", 11);
	ac_buf_add(out, v->list.data, v->list.len);
	ac_buf_add(out, "]}", 2);
}

static bool
check_len(struct ac_verrs *v, const char *where, const struct ac_strspec *spec, const char *s,
    size_t len)
{
	size_t chars;
	char msg[80];

	if (!ac_utf8_count(s, len, &chars)) {
		/* Bodies are validated as UTF-8 by the parser; this catches query and path bytes. */
		ac_verrs_add(v, where, spec->name, "string is not valid UTF-8", "value_error.str.encoding",
		    false, 0);
		return false;
	}
	if (chars < spec->min_chars) {
		snprintf(msg, sizeof(msg), "ensure this value has at least %zu characters", spec->min_chars);
		ac_verrs_add(v, where, spec->name, msg, "value_error.any_str.min_length", true,
		    (int64_t)spec->min_chars);
		return false;
	}
	if (chars > spec->max_chars) {
		snprintf(msg, sizeof(msg), "ensure this value has at most %zu characters", spec->max_chars);
		ac_verrs_add(v, where, spec->name, msg, "value_error.any_str.max_length", true,
		    (int64_t)spec->max_chars);
		return false;
	}
	return true;
}

bool
ac_valid_body_str(struct ac_verrs *v, struct json_object *body, const struct ac_strspec *spec,
    struct ac_str *out, bool *present)
{
	struct json_object *m = NULL;

	*present = false;
	if (!json_object_object_get_ex(body, spec->name, &m)) {
		if (spec->required)
			ac_verrs_add(v, "body", spec->name, "field required", "value_error.missing", false, 0);
		return false;
	}
	if (m == NULL) {
		if (!spec->nullable)
			ac_verrs_add(v, "body", spec->name, "none is not an allowed value",
			    "type_error.none.not_allowed", false, 0);
		return false;
	}
	*present = true;
	if (!json_object_is_type(m, json_type_string)) {
		ac_verrs_add(v, "body", spec->name, "str type expected", "type_error.str", false, 0);
		return false;
	}
	*out = ac_json_get_str(m);
	return check_len(v, "body", spec, out->ptr, out->len);
}

bool
ac_valid_str(struct ac_verrs *v, const char *where, const struct ac_strspec *spec,
    const struct ac_str *value, struct ac_str *out)
{
	if (value == NULL) {
		if (spec->required)
			ac_verrs_add(v, where, spec->name, "field required", "value_error.missing", false, 0);
		return false;
	}
	if (!check_len(v, where, spec, value->ptr, value->len))
		return false;
	*out = *value;
	return true;
}

bool
ac_valid_int(struct ac_verrs *v, const char *name, const struct ac_str *value, int64_t def,
    int64_t min, int64_t max, int64_t *out)
{
	enum ac_err err;
	int64_t n = 0;
	char msg[80];
	bool low;

	if (value == NULL) {
		*out = def;
		return true;
	}
	err = ac_parse_i64(value->ptr, value->len, INT64_MIN, INT64_MAX, &n);
	if (err == AC_EINVAL) {
		ac_verrs_add(v, "query", name, "value is not a valid integer", "type_error.integer", false, 0);
		return false;
	}
	/* Past 64 bits: the sign says which bound it misses. */
	low = err == AC_ETOOBIG ? value->ptr[0] == '-' : n < min;
	if (err == AC_ETOOBIG || n < min || n > max) {
		if (low) {
			snprintf(msg, sizeof(msg), "ensure this value is greater than or equal to %lld",
			    (long long)min);
			ac_verrs_add(v, "query", name, msg, "value_error.number.not_ge", true, min);
		} else {
			snprintf(msg, sizeof(msg), "ensure this value is less than or equal to %lld",
			    (long long)max);
			ac_verrs_add(v, "query", name, msg, "value_error.number.not_le", true, max);
		}
		return false;
	}
	*out = n;
	return true;
}

bool
ac_valid_bool(struct ac_verrs *v, const char *name, const struct ac_str *value, bool def, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	if (value == NULL) {
		*out = def;
		return true;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (value->len == strlen(yes[i]) && strncasecmp(value->ptr, yes[i], value->len) == 0) {
			*out = true;
			return true;
		}
		if (value->len == strlen(no[i]) && strncasecmp(value->ptr, no[i], value->len) == 0) {
			*out = false;
			return true;
		}
	}
	ac_verrs_add(v, "query", name, "value could not be parsed to a boolean", "type_error.bool", false, 0);
	return false;
}
