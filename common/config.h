/*
 * Settings: the environment first, then a .env file in the working directory, then defaults.
 * A bad value is an error whose message names the setting.
 */
#ifndef AC_CONFIG_H
#define AC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define AC_CONFIG_MAX_ORIGINS 32
#define AC_PATH_MAX 4096

struct ac_config {
	char db_path[AC_PATH_MAX];	/* from DATABASE_URL */
	int port;			/* PORT: the HTTP port of the front server under make run */
	int processes;			/* WORKER_PROCESSES */
	int threads;			/* WORKER_THREADS */
	size_t max_body;		/* MAX_BODY_BYTES */
	int busy_timeout_ms;		/* DB_BUSY_TIMEOUT_MS */
	int cors_any;			/* CORS_ORIGINS is "*" */
	int cors_count;
	char cors_origins[AC_CONFIG_MAX_ORIGINS][256];
	char socket_path[108];		/* FCGI_SOCKET, empty: the listening socket on fd 0 */
	unsigned socket_mode;		/* FCGI_SOCKET_MODE */
	char socket_group[64];		/* FCGI_SOCKET_GROUP */
};

/*
 * Fills cfg.  dotenv is the path of the .env file to read (NULL: "./.env"; a missing file is fine).
 * On failure, msg (of msg_size bytes) names the setting and the problem.
 */
enum ac_err ac_config_load(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size);

/* The raw value of a setting as the configuration sees it (environment, then .env); NULL if unset. */
const char *ac_config_raw(const char *name, char *tmp, size_t tmp_size, const char *dotenv);

#endif
