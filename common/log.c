#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "util.h"

#define LINE_MAX_BYTES 4096

/* Set by ac_log_open before threads start, never after (ac_log_reopen changes the file behind
 * log_fd, not log_fd). */
static int log_fd = STDERR_FILENO;
static enum ac_log_level log_level = AC_LOG_INFO;
static char log_path[4096];
static bool log_json;
static _Thread_local char request_id[AC_REQUEST_ID_MAX + 1];

static const char *const names[] = { "error", "warn", "info", "debug" };

enum ac_err
ac_log_level_parse(const char *s, enum ac_log_level *out)
{
	for (int i = 0; i <= AC_LOG_DEBUG; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum ac_log_level)i;
			return AC_OK;
		}
	}
	return AC_EINVAL;
}

enum ac_err
ac_log_open(const char *path, enum ac_log_level level)
{
	log_level = level;
	if (path == NULL || *path == '\0')
		return AC_OK;
	if (strlen(path) >= sizeof(log_path))
		return AC_EINVAL;
	log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log_fd < 0) {
		log_fd = STDERR_FILENO;
		return AC_ESYS;
	}
	memcpy(log_path, path, strlen(path) + 1);
	return AC_OK;
}

enum ac_err
ac_log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return AC_OK;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return AC_ESYS;
	/* dup3 swaps the file in one step: a line being written goes wholly to the old or the new. */
	if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
		close(fd);
		return AC_ESYS;
	}
	close(fd);
	return AC_OK;
}

bool
ac_log_enabled(enum ac_log_level level)
{
	return level <= log_level;
}

void
ac_log_set_json(bool json)
{
	log_json = json;
}

bool
ac_log_json(void)
{
	return log_json;
}

void
ac_log_set_request_id(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;

	if (n > AC_REQUEST_ID_MAX)
		n = AC_REQUEST_ID_MAX;
	memcpy(request_id, id != NULL ? id : "", n);
	request_id[n] = '\0';
}

const char *
ac_log_request_id(void)
{
	return request_id;
}

/* A JSON line: {"time":..,"level":..,[,"request_id":..]<fields>}, cut (still JSON) when too long. */
static void
write_json(enum ac_log_level level, const char *fields, size_t len, bool msg)
{
	char ts[AC_TIME_LEN + 1];
	struct ac_buf b;

	ac_buf_init(&b, 2 * LINE_MAX_BYTES);
	ac_time_format(ac_now_us(), ts);
	ac_buf_adds(&b, "{\"time\":\"");
	ac_buf_add(&b, ts, AC_TIME_LEN);
	ac_buf_adds(&b, "\",\"level\":\"");
	ac_buf_adds(&b, names[level]);
	ac_buf_addc(&b, '"');
	if (request_id[0] != '\0' && (msg || strstr(fields, "\"request_id\"") == NULL)) {
		ac_buf_adds(&b, ",\"request_id\":");
		ac_json_cstr(&b, request_id);
	}
	ac_buf_addc(&b, ',');
	if (msg) {
		ac_buf_adds(&b, "\"msg\":");
		ac_json_str(&b, fields, len > LINE_MAX_BYTES - 512 ? LINE_MAX_BYTES - 512 : len);
	} else {
		ac_buf_add(&b, fields, len);
	}
	ac_buf_add(&b, "}\n", 2);
	if (ac_buf_err(&b) == AC_OK)	/* fields are bounded by their callers: not expected otherwise */
		(void)!write(log_fd, b.data, b.len);
	ac_buf_free(&b);
}

void
ac_log_fields(enum ac_log_level level, const char *fields, size_t len)
{
	if (ac_log_enabled(level))
		write_json(level, fields, len, false);
}

void
ac_log(enum ac_log_level level, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	size_t n;
	va_list ap;
	int k;

	if (!ac_log_enabled(level))
		return;
	if (log_json) {
		va_start(ap, fmt);
		k = vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		if (k >= 0)
			write_json(level, line, (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1, true);
		return;
	}
	ac_time_format(ac_now_us(), line);
	n = AC_TIME_LEN;
	n += (size_t)snprintf(line + n, sizeof(line) - n, " %s ", names[level]);
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	n += (size_t)k;
	if (n > sizeof(line) - 2) {
		/* Cut a long line. */
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	}
	line[n++] = '\n';
	(void)!write(log_fd, line, n);
}
