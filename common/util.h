/* Small pure helpers: clock, identifiers, UTF-8, numbers. */
#ifndef AC_UTIL_H
#define AC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define AC_UUID_LEN 36		/* 8-4-4-4-12 hex digits and dashes */
#define AC_TIME_LEN 27		/* 2026-11-25T00:20:14.718833Z */

/* Microseconds since 1970-01-01 UTC: for timestamps that are stored or shown, never for intervals. */
int64_t ac_now_us(void);

/* Microseconds on the monotonic clock (CLOCK_MONOTONIC): for intervals, deadlines and timeouts; a
 * stepped wall clock does not move it. */
int64_t ac_mono_us(void);

/* Writes t as ISO 8601 UTC with microseconds and a Z; out gets AC_TIME_LEN bytes and a NUL. */
void ac_time_format(int64_t t, char out[AC_TIME_LEN + 1]);
/* The inverse: "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" (years 1970..9999) to microseconds; AC_EINVAL otherwise. */
enum ac_err ac_time_parse(const char *s, size_t len, int64_t *out);

/* A random (version 4) UUID in lower case; out gets AC_UUID_LEN bytes and a NUL. */
enum ac_err ac_uuid4(char out[AC_UUID_LEN + 1]);

/* Whether s is a UUID in canonical 8-4-4-4-12 form (either case). */
bool ac_uuid_valid(const char *s, size_t len);

/*
 * Checks that s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)
 * and counts its characters.  Returns false on malformed input.
 */
bool ac_utf8_count(const char *s, size_t len, size_t *chars);

/* Parses an optionally signed decimal integer that is the whole of s, within [min, max]. */
enum ac_err ac_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

#endif
