/*
 * Logging: one line per event, "<time> <level> <message>" (or with LOG_FORMAT=json one JSON object,
 * {"time", "level", "request_id", "msg"}), written whole with one write() (so lines
 * from threads and processes never interleave) to stderr or LOG_FILE.  Set up once at start, before
 * any thread; after that the descriptor lines go to never changes (a reopen puts the new file behind
 * the same number).  Never given the API key; message content only when LOG_CONTENT asks for it.
 */
#ifndef AC_LOG_H
#define AC_LOG_H

#include <stdbool.h>

#include "err.h"

enum ac_log_level {
	AC_LOG_ERROR,
	AC_LOG_WARN,
	AC_LOG_INFO,	/* one line per request */
	AC_LOG_DEBUG,
};

/* Parses "error", "warn", "info" or "debug". */
enum ac_err ac_log_level_parse(const char *s, enum ac_log_level *out);

/* Sends lines at or above level to path (NULL or "": stderr). */
enum ac_err ac_log_open(const char *path, enum ac_log_level level);

/*
 * Opens LOG_FILE again (after logrotate moved it: SIGHUP, SIGUSR1), atomically for the threads that
 * are writing lines meanwhile; nothing to do with stderr.  Any thread, at any time.
 */
enum ac_err ac_log_reopen(void);

bool ac_log_enabled(enum ac_log_level level);

/* LOG_FORMAT=json: every line one JSON object (set once at start, like ac_log_open). */
void ac_log_set_json(bool json);
bool ac_log_json(void);

/*
 * The request the calling thread is working on, for its lines (JSON: "request_id") and for the
 * provider call it makes (the X-Request-Id it sends).  id NULL or "" for none; kept as a copy.
 */
#define AC_REQUEST_ID_MAX 64
void ac_log_set_request_id(const char *id);
const char *ac_log_request_id(void);	/* "" when none */

/* A JSON line of fields: {"time","level",<fields>} (fields: JSON members, no braces; LOG_FORMAT=json). */
void ac_log_fields(enum ac_log_level level, const char *fields, size_t len);

void ac_log(enum ac_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
