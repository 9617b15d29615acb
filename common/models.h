/*
 * The model registry: aliases ("fast", "balanced", "smart") and what each sends to the provider.
 * Read once at start from a text file (conf/models.conf; its copy is compiled in for when no file
 * is configured or found).
 */
#ifndef AC_MODELS_H
#define AC_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AC_MODELS_MAX 32

struct ac_model {
	char alias[32];
	char id[128];			/* the provider's model id */
	double temperature;
	int64_t max_completion_tokens;
	int64_t context_window;
	char reasoning_effort[8];	/* "" when not sent */
};

struct ac_models {
	int count;
	struct ac_model m[AC_MODELS_MAX];
};

/* The registry text compiled in from conf/models.conf (build/models_default.c). */
extern const char ac_models_default[];

/* Parses registry text; on AC_EINVAL msg names the line and the problem. */
enum ac_err ac_models_parse(struct ac_models *out, const char *text, size_t len, const char *origin,
    char *msg, size_t msg_size);

/* Reads a registry file (path NULL: the compiled-in one). */
enum ac_err ac_models_load(struct ac_models *out, const char *path, char *msg, size_t msg_size);

/* The model for an alias, or NULL. */
const struct ac_model *ac_models_find(const struct ac_models *ms, const char *alias, size_t len);

#endif
