/*
 * Logging: one line per event, "<time> <level> <message>", written whole with one write() (so lines
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

void ac_log(enum ac_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
