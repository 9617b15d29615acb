#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"
#include "util.h"

#define MODELS_FILE_MAX (256 * 1024)

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next whitespace-separated word of [*p, end), or 0 when none is left. */
static size_t
word(const char **p, const char *end, const char **start)
{
	while (*p < end && is_space(**p))
		(*p)++;
	*start = *p;
	while (*p < end && !is_space(**p))
		(*p)++;
	return (size_t)(*p - *start);
}

static int
set_param(struct ac_model *m, const char *key, size_t klen, const char *val, size_t vlen, char *why,
    size_t why_size)
{
	char v[64];
	int64_t n;

	if (vlen == 0 || vlen >= sizeof(v)) {
		snprintf(why, why_size, "bad value for %.*s", (int)klen, key);
		return -1;
	}
	memcpy(v, val, vlen);
	v[vlen] = '\0';
	if (klen == 11 && memcmp(key, "temperature", 11) == 0) {
		char *endp;

		errno = 0;
		m->temperature = strtod(v, &endp);
		if (errno != 0 || *endp != '\0' || !(m->temperature >= 0 && m->temperature <= 2)) {
			snprintf(why, why_size, "temperature must be a number from 0 to 2, not '%s'", v);
			return -1;
		}
	} else if (klen == 21 && memcmp(key, "max_completion_tokens", 21) == 0) {
		if (ac_parse_i64(v, vlen, 1, 10000000, &n) != AC_OK) {
			snprintf(why, why_size, "max_completion_tokens must be a whole number from 1, not '%s'", v);
			return -1;
		}
		m->max_completion_tokens = n;
	} else if (klen == 14 && memcmp(key, "context_window", 14) == 0) {
		if (ac_parse_i64(v, vlen, 256, 100000000, &n) != AC_OK) {
			snprintf(why, why_size, "context_window must be a whole number from 256, not '%s'", v);
			return -1;
		}
		m->context_window = n;
	} else if (klen == 16 && memcmp(key, "reasoning_effort", 16) == 0) {
		if (strcmp(v, "low") != 0 && strcmp(v, "medium") != 0 && strcmp(v, "high") != 0) {
			snprintf(why, why_size, "reasoning_effort must be low, medium or high, not '%s'", v);
			return -1;
		}
		memcpy(m->reasoning_effort, v, vlen + 1);
	} else {
		snprintf(why, why_size, "unknown parameter '%.*s'", (int)klen, key);
		return -1;
	}
	return 0;
}

enum ac_err
ac_models_parse(struct ac_models *out, const char *text, size_t len, const char *origin, char *msg,
    size_t msg_size)
{
	const char *p = text, *end = text + len;
	int line = 0;
	char why[160];

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *lend = eol != NULL ? eol : end;
		const char *w;
		size_t n;
		struct ac_model *m;

		line++;
		n = word(&p, lend, &w);
		if (n == 0 || w[0] == '#')
			goto next;
		if (out->count == AC_MODELS_MAX) {
			snprintf(why, sizeof(why), "more than %d aliases", AC_MODELS_MAX);
			goto bad;
		}
		m = &out->m[out->count];
		if (n >= sizeof(m->alias)) {
			snprintf(why, sizeof(why), "alias too long");
			goto bad;
		}
		memcpy(m->alias, w, n);
		if (ac_models_find(out, m->alias, n) != NULL) {
			snprintf(why, sizeof(why), "alias '%s' given twice", m->alias);
			goto bad;
		}
		n = word(&p, lend, &w);
		if (n == 0 || n >= sizeof(m->id)) {
			snprintf(why, sizeof(why), "alias '%s' needs a provider model id", m->alias);
			goto bad;
		}
		memcpy(m->id, w, n);
		m->temperature = 0.7;
		m->max_completion_tokens = 4096;
		m->context_window = 131072;
		while ((n = word(&p, lend, &w)) > 0) {
			const char *eq = memchr(w, '=', n);

			if (w[0] == '#')
				break;
			if (eq == NULL) {
				snprintf(why, sizeof(why), "expected key=value, not '%.*s'", (int)n, w);
				goto bad;
			}
			if (set_param(m, w, (size_t)(eq - w), eq + 1, n - (size_t)(eq - w) - 1, why, sizeof(why)) != 0)
				goto bad;
		}
		if (m->max_completion_tokens >= m->context_window) {
			snprintf(why, sizeof(why), "max_completion_tokens must be below context_window");
			goto bad;
		}
		out->count++;
next:
		p = eol != NULL ? eol + 1 : end;
	}
	if (out->count == 0) {
		snprintf(msg, msg_size, "%s: no model aliases", origin);
		return AC_EINVAL;
	}
	return AC_OK;
bad:
	snprintf(msg, msg_size, "%s: line %d: %s", origin, line, why);
	return AC_EINVAL;
}

enum ac_err
ac_models_load(struct ac_models *out, const char *path, char *msg, size_t msg_size)
{
	FILE *f;
	char *text;
	size_t n;
	enum ac_err err;

	if (path == NULL)
		return ac_models_parse(out, ac_models_default, strlen(ac_models_default), "built-in models",
		    msg, msg_size);
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(msg, msg_size, "MODELS_FILE: %s: %s", path, strerror(errno));
		return AC_EINVAL;
	}
	text = malloc(MODELS_FILE_MAX + 1);
	if (text == NULL) {
		fclose(f);
		return AC_ENOMEM;
	}
	n = fread(text, 1, MODELS_FILE_MAX + 1, f);
	fclose(f);
	if (n > MODELS_FILE_MAX) {
		snprintf(msg, msg_size, "MODELS_FILE: %s: larger than %d bytes", path, MODELS_FILE_MAX);
		free(text);
		return AC_EINVAL;
	}
	err = ac_models_parse(out, text, n, path, msg, msg_size);
	free(text);
	return err;
}

const struct ac_model *
ac_models_find(const struct ac_models *ms, const char *alias, size_t len)
{
	for (int i = 0; i < ms->count; i++) {
		if (strlen(ms->m[i].alias) == len && memcmp(ms->m[i].alias, alias, len) == 0)
			return &ms->m[i];
	}
	return NULL;
}
