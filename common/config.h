/*
 * Settings: the environment first, then a .env file in the working directory, then defaults.
 * A bad value is an error whose message names the setting.
 */
#ifndef AC_CONFIG_H
#define AC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "limits.h"
#include "log.h"
#include "models.h"

#define AC_CONFIG_MAX_ORIGINS 32
#define AC_PATH_MAX 4096

enum ac_auth_mode {
	AC_AUTH_TOKEN,		/* accounts in the database, bearer tokens */
	AC_AUTH_REMOTE_USER,	/* the web server's REMOTE_USER */
	AC_AUTH_NONE,		/* the user_id the request names (a trusted caller only) */
};

#define AC_JWT_SECRET_MIN 32

struct ac_config {
	enum ac_db_kind db_kind;	/* DATABASE_URL's engine */
	char db_path[AC_PATH_MAX];	/* SQLite: the file; PostgreSQL: the libpq connection string */
	char db_display[AC_PATH_MAX];	/* DATABASE_URL for logs: any password replaced by *** */
	int statement_timeout_ms;	/* DB_STATEMENT_TIMEOUT_MS (PostgreSQL) */
	int db_prepared;		/* DB_PREPARED (PostgreSQL): named prepared statements */
	int db_pool_size;		/* DB_POOL_SIZE (PostgreSQL): connections per process */
	int port;			/* PORT: the HTTP port of the front server under make run */
	int processes;			/* WORKER_PROCESSES */
	int threads;			/* WORKER_THREADS */
	size_t max_body;		/* MAX_BODY_BYTES */
	size_t max_import;		/* MAX_IMPORT_BYTES: the body of POST /import */
	int busy_timeout_ms;		/* DB_BUSY_TIMEOUT_MS */
	int cors_any;			/* CORS_ORIGINS is "*" */
	int cors_count;
	char cors_origins[AC_CONFIG_MAX_ORIGINS][256];
	char socket_path[108];		/* FCGI_SOCKET (a unix socket's path, or host:port), empty: fd 0 */
	unsigned socket_mode;		/* FCGI_SOCKET_MODE */
	char socket_group[64];		/* FCGI_SOCKET_GROUP */
	char allowed_peers[1024];	/* FCGI_ALLOWED_PEERS: IPv4 addresses, comma-separated ("": none) */
	int read_timeout_s;		/* FCGI_READ_TIMEOUT_S: a request's records and body, from its accept */

	/* The model provider (an OpenAI-compatible API). */
	char api_key[256];		/* GROQ_API_KEY: empty when unset; never logged or returned */
	char base_url[512];		/* GROQ_BASE_URL, without a trailing slash */
	int connect_timeout_ms;		/* PROVIDER_CONNECT_TIMEOUT_MS */
	int provider_timeout_s;		/* PROVIDER_TIMEOUT_S: a whole call, stream included */
	int provider_retries;		/* PROVIDER_RETRIES */
	size_t provider_max_response;	/* PROVIDER_MAX_RESPONSE_BYTES */
	int heartbeat_s;		/* SSE_HEARTBEAT_S: ": ping" after this long with nothing sent */
	int reasoning_stream;		/* REASONING=stream: the model's reasoning as "reasoning" events */
	int event_loop;			/* EVENT_LOOP: chats waiting on the model are parked on the loop */
	size_t client_queue_bytes;	/* CLIENT_QUEUE_BYTES: a parked chat's output waiting for a client */
	size_t page_cache_bytes;	/* PAGE_CACHE_BYTES: rendered message pages kept per process */
	char system_prompt[4096];	/* SYSTEM_PROMPT */
	char models_file[AC_PATH_MAX];	/* MODELS_FILE: empty for ./conf/models.conf or the built-in copy */
	struct ac_models models;

	enum ac_log_level log_level;	/* LOG_LEVEL */
	char log_file[AC_PATH_MAX];	/* LOG_FILE: empty for stderr */
	int log_content;		/* LOG_CONTENT: message content in debug lines */
	int log_json;			/* LOG_FORMAT=json: one JSON object per line */
	int trust_request_id;		/* TRUST_REQUEST_ID: a client's X-Request-Id is taken as the request's */

	/* Monitoring (common/metrics.h). */
	int metrics;			/* METRICS: GET /metrics answers, and the counters count */
	char metrics_allow[1024];	/* METRICS_ALLOW: addresses or CIDR ranges, comma-separated */

	/* Accounts (load_auth in config.c; README "Accounts"). */
	enum ac_auth_mode auth_mode;	/* AUTH */
	char jwt_secret[1024];		/* JWT_SECRET: at least 32 bytes; never logged or returned */
	int token_expire_min;		/* ACCESS_TOKEN_EXPIRE_MINUTES */
	int registration_open;		/* REGISTRATION=open */
	int login_window_s;		/* LOGIN_WINDOW_S: the failed logins counted are this recent */
	int login_max_email;		/* LOGIN_MAX_FAILURES_PER_EMAIL (0: no limit) */
	int login_max_addr;		/* LOGIN_MAX_FAILURES_PER_ADDR (0: no limit) */
	int password_hash_concurrency;	/* PASSWORD_HASH_CONCURRENCY: hashes at once per process */
	int password_hash_memory_kib;	/* PASSWORD_HASH_MEMORY_KIB (argon2id's m) */
	int password_hash_passes;	/* PASSWORD_HASH_PASSES (argon2id's t) */
	/* An outside identity provider's tokens (RS256 or ES256), checked as well when the key is set. */
	char jwt_public_key_file[AC_PATH_MAX];	/* JWT_PUBLIC_KEY_FILE: PEM */
	char jwt_issuer[512];		/* JWT_ISSUER: the tokens' iss */
	char jwt_audience[512];		/* JWT_AUDIENCE: one of the tokens' aud */

	/* Operations. */
	struct ac_limits_conf limits;	/* CHAT_RATE_PER_MINUTE, TOKENS_PER_DAY, CHAT_CONCURRENCY_PER_USER */
	int auto_title;			/* AUTO_TITLE: a chat's first exchange titles it */
	int retention_days;		/* RETENTION_DAYS: chats not updated for this long are deleted (0: never) */
	int retention_interval_s;	/* RETENTION_INTERVAL_S: how often a worker looks */
};

#define AC_DEFAULT_SYSTEM_PROMPT \
	"You are a helpful, friendly AI assistant. Answer clearly and concisely."
#define AC_DEFAULT_BASE_URL "https://api.groq.com/openai/v1"

/* Sets cfg's database (db_kind, db_path, db_display) from a URL as DATABASE_URL takes it. */
enum ac_err ac_config_database_url(struct ac_config *cfg, const char *url, char *msg, size_t msg_size);

/* The engine settings for ac_repo_open/ac_repo_migrate (pointing into cfg). */
void ac_config_db(const struct ac_config *cfg, struct ac_db_conf *out);

/*
 * Fills cfg.  path is the .env file to read, once (NULL: "./.env"; a missing file is fine).  On
 * failure, msg (of msg_size bytes) names the setting and the problem; a value is never cut short.
 */
enum ac_err ac_config_load(struct ac_config *cfg, const char *path, char *msg, size_t msg_size);

#endif
