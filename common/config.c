#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "metrics.h"
#include "util.h"

#define DOTENV_MAX (64 * 1024)

/*
 * Finds NAME in the text of a .env file (read once by ac_config_load): KEY=value lines, "export "
 * prefix, # comments, optional quotes; the last assignment wins.  A value that does not fit out is
 * not cut short: *too_long is set instead.
 */
static const char *
dotenv_get(const char *text, const char *name, char *out, size_t out_size, bool *too_long)
{
	const char *line = text, *found = NULL;

	while (line != NULL && *line != '\0') {
		const char *nl = strchr(line, '\n');
		const char *lend = nl != NULL ? nl : line + strlen(line);
		const char *p = line, *eq, *val, *end;
		size_t klen, vlen;

		line = nl != NULL ? nl + 1 : NULL;
		while (p < lend && (*p == ' ' || *p == '\t'))
			p++;
		if (lend - p > 7 && strncmp(p, "export ", 7) == 0)
			p += 7;
		eq = memchr(p, '=', (size_t)(lend - p));
		if (p == lend || *p == '#' || eq == NULL)
			continue;
		klen = (size_t)(eq - p);
		while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
			klen--;
		if (klen != strlen(name) || strncmp(p, name, klen) != 0)
			continue;
		val = eq + 1;
		while (val < lend && (*val == ' ' || *val == '\t'))
			val++;
		end = lend;
		while (end > val && strchr(" \t\r", end[-1]) != NULL)
			end--;
		if (end - val >= 2 && (*val == '"' || *val == '\'') && end[-1] == *val) {
			val++;
			end--;
		} else {
			/* An unquoted value ends at a comment. */
			for (const char *h = val; h + 1 < end; h++) {
				if ((h[0] == ' ' || h[0] == '\t') && h[1] == '#') {
					end = h;
					break;
				}
			}
			while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
		}
		vlen = (size_t)(end - val);
		*too_long = vlen >= out_size;
		if (*too_long)
			continue;
		memcpy(out, val, vlen);
		out[vlen] = '\0';
		found = out;
	}
	return *too_long ? NULL : found;
}

/* A setting as given: the environment first, then the .env text; NULL if unset (or too long). */
static const char *
raw(const char *name, char *tmp, size_t tmp_size, const char *file, bool *too_long)
{
	const char *v = getenv(name);

	*too_long = false;
	if (v != NULL) {
		*too_long = strlen(v) >= tmp_size;
		return *too_long ? NULL : v;
	}
	return file != NULL ? dotenv_get(file, name, tmp, tmp_size, too_long) : NULL;
}

/* raw(), with a value too long for tmp turned into an error that names the setting. */
static enum ac_err
setting(const char *name, char *tmp, size_t tmp_size, const char *file, const char **out, char *msg,
    size_t msg_size)
{
	bool too_long;

	*out = raw(name, tmp, tmp_size, file, &too_long);
	if (too_long) {
		snprintf(msg, msg_size, "%s: longer than %zu bytes", name, tmp_size - 1);
		return AC_EINVAL;
	}
	return AC_OK;
}

static enum ac_err
get_int(const char *name, const char *dotenv, long long def, long long min, long long max,
    long long *out, char *msg, size_t msg_size)
{
	char tmp[256];
	const char *v;
	int64_t n;

	if (setting(name, tmp, sizeof(tmp), dotenv, &v, msg, msg_size) != AC_OK)
		return AC_EINVAL;
	if (v == NULL || *v == '\0') {
		*out = def;
		return AC_OK;
	}
	if (ac_parse_i64(v, strlen(v), min, max, &n) != AC_OK) {
		snprintf(msg, msg_size, "%s: '%s' is not a whole number from %lld to %lld", name, v, min, max);
		return AC_EINVAL;
	}
	*out = n;
	return AC_OK;
}

/* url for logs: a password (user:PASSWORD@ in a URL, password=... in libpq's keyword form) as ***. */
static void
redact_url(const char *url, char *out, size_t out_size)
{
	const char *at, *colon, *scheme = strstr(url, "://"), *kw;

	snprintf(out, out_size, "%s", url);
	if (scheme != NULL) {
		const char *auth = scheme + 3;

		at = strchr(auth, '@');
		colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon != NULL)
			snprintf(out, out_size, "%.*s***%s", (int)(colon + 1 - url), url, at);
	}
	kw = strstr(url, "password");
	if (kw != NULL && (kw == url || kw[-1] == ' ' || kw[-1] == '&' || kw[-1] == '?')) {
		const char *end = kw + 8;

		while (*end == ' ')
			end++;
		if (*end == '=') {
			end++;
			while (*end != '\0' && *end != ' ' && *end != '&')
				end++;
			snprintf(out, out_size, "%.*spassword=***%s", (int)(kw - url), url, end);
		}
	}
}

static enum ac_err
parse_database_url(struct ac_config *cfg, const char *url, char *msg, size_t msg_size)
{
	static const char prefix[] = "sqlite:///";
	const char *path;

	redact_url(url, cfg->db_display, sizeof(cfg->db_display));
	/* PostgreSQL: a URI, or libpq's keyword form (host=... dbname=...), handed to libpq as it is. */
	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
	    (strchr(url, '=') != NULL && strstr(url, "://") == NULL)) {
		if (strlen(url) >= sizeof(cfg->db_path)) {
			snprintf(msg, msg_size, "DATABASE_URL: longer than %zu bytes", sizeof(cfg->db_path) - 1);
			return AC_EINVAL;
		}
		cfg->db_kind = AC_DB_PG;
		memcpy(cfg->db_path, url, strlen(url) + 1);
		return AC_OK;
	}
	if (strncmp(url, prefix, sizeof(prefix) - 1) != 0) {
		snprintf(msg, msg_size,
		    "DATABASE_URL: '%s' is not supported: use sqlite:///relative/path, sqlite:////absolute/path, "
		    "or postgresql://user:password@host:port/database", cfg->db_display);
		return AC_EINVAL;
	}
	path = url + sizeof(prefix) - 1;	/* "/abs" for sqlite:////abs, "./x" or "x" otherwise */
	if (*path == '\0' || strchr(path, '?') != NULL) {
		snprintf(msg, msg_size, "DATABASE_URL: '%s' names no file", url);
		return AC_EINVAL;
	}
	if (strlen(path) >= sizeof(cfg->db_path)) {
		snprintf(msg, msg_size, "DATABASE_URL: the path is too long");
		return AC_EINVAL;
	}
	cfg->db_kind = AC_DB_SQLITE;
	memcpy(cfg->db_path, path, strlen(path) + 1);
	return AC_OK;
}

enum ac_err
ac_config_database_url(struct ac_config *cfg, const char *url, char *msg, size_t msg_size)
{
	return parse_database_url(cfg, url, msg, msg_size);
}

void
ac_config_db(const struct ac_config *cfg, struct ac_db_conf *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = cfg->db_kind;
	out->target = cfg->db_path;
	out->busy_timeout_ms = cfg->busy_timeout_ms;
	out->statement_timeout_ms = cfg->statement_timeout_ms;
	out->prepared = cfg->db_prepared != 0;
	out->pool_size = cfg->db_pool_size;
}

/*
 * FCGI_ALLOWED_PEERS: the IPv4 addresses that may connect to a TCP FCGI_SOCKET, comma-separated
 * (libfcgi closes other peers' connections at accept: FCGI_WEB_SERVER_ADDRS).
 */
static enum ac_err
parse_peers(struct ac_config *cfg, const char *v, char *msg, size_t msg_size)
{
	size_t used = 0;

	while (*v != '\0') {
		char addr[INET_ADDRSTRLEN + 8];
		struct in_addr in;
		size_t n;

		v += strspn(v, " ,");
		n = strcspn(v, " ,");
		if (n == 0)
			break;
		if (n >= sizeof(addr) - 1) {
			snprintf(msg, msg_size, "FCGI_ALLOWED_PEERS: '%.*s' is not an IPv4 address", (int)n, v);
			return AC_EINVAL;
		}
		memcpy(addr, v, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET, addr, &in) != 1) {
			snprintf(msg, msg_size, "FCGI_ALLOWED_PEERS: '%s' is not an IPv4 address (such as 10.0.0.2)", addr);
			return AC_EINVAL;
		}
		if (used + n + 2 > sizeof(cfg->allowed_peers)) {
			snprintf(msg, msg_size, "FCGI_ALLOWED_PEERS: longer than %zu bytes", sizeof(cfg->allowed_peers) - 1);
			return AC_EINVAL;
		}
		used += (size_t)snprintf(cfg->allowed_peers + used, sizeof(cfg->allowed_peers) - used, "%s%s",
		    used > 0 ? "," : "", addr);
		v += n;
	}
	return AC_OK;
}

static enum ac_err
parse_origins(struct ac_config *cfg, const char *v, char *msg, size_t msg_size)
{
	const char *p = v;

	cfg->cors_any = 0;
	cfg->cors_count = 0;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 1 && *p == '*') {
			cfg->cors_any = 1;
		} else if (len > 0) {
			if (cfg->cors_count == AC_CONFIG_MAX_ORIGINS ||
			    len >= sizeof(cfg->cors_origins[0])) {
				snprintf(msg, msg_size, "CORS_ORIGINS: at most %d origins of under 256 characters",
				    AC_CONFIG_MAX_ORIGINS);
				return AC_EINVAL;
			}
			memcpy(cfg->cors_origins[cfg->cors_count], p, len);
			cfg->cors_origins[cfg->cors_count][len] = '\0';
			cfg->cors_count++;
		}
		p = *end == ',' ? end + 1 : end;
	}
	return AC_OK;
}

/* A string setting into a fixed buffer; def when unset. */
static enum ac_err
get_str(const char *name, const char *dotenv, const char *def, char *out, size_t out_size, char *msg,
    size_t msg_size)
{
	char tmp[AC_PATH_MAX];
	const char *v;

	if (setting(name, tmp, sizeof(tmp), dotenv, &v, msg, msg_size) != AC_OK)
		return AC_EINVAL;
	if (v == NULL || *v == '\0')
		v = def;
	if (strlen(v) >= out_size) {
		snprintf(msg, msg_size, "%s: longer than %zu bytes", name, out_size - 1);
		return AC_EINVAL;
	}
	memcpy(out, v, strlen(v) + 1);
	return AC_OK;
}

static enum ac_err
load_provider(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size)
{
	enum ac_err err;
	long long n;
	size_t len;
	char tmp[64];
	const char *models, *v;
	FILE *f;

	if ((err = get_str("GROQ_API_KEY", dotenv, "", cfg->api_key, sizeof(cfg->api_key), msg,
	    msg_size)) != AC_OK)
		return err;
	for (const char *p = cfg->api_key; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(msg, msg_size, "GROQ_API_KEY: holds spaces or control characters");
			return AC_EINVAL;
		}
	}
	if ((err = get_str("GROQ_BASE_URL", dotenv, AC_DEFAULT_BASE_URL, cfg->base_url,
	    sizeof(cfg->base_url), msg, msg_size)) != AC_OK)
		return err;
	len = strlen(cfg->base_url);
	while (len > 0 && cfg->base_url[len - 1] == '/')
		cfg->base_url[--len] = '\0';
	if (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0) {
		snprintf(msg, msg_size, "GROQ_BASE_URL: '%s' is not an http:// or https:// URL", cfg->base_url);
		return AC_EINVAL;
	}
	if ((err = get_int("PROVIDER_CONNECT_TIMEOUT_MS", dotenv, 5000, 100, 120000, &n, msg,
	    msg_size)) != AC_OK)
		return err;
	cfg->connect_timeout_ms = (int)n;
	if ((err = get_int("PROVIDER_TIMEOUT_S", dotenv, 120, 1, 3600, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->provider_timeout_s = (int)n;
	if ((err = get_int("PROVIDER_RETRIES", dotenv, 2, 0, 10, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->provider_retries = (int)n;
	if ((err = get_int("PROVIDER_MAX_RESPONSE_BYTES", dotenv, 8 * 1048576, 65536, 256LL * 1048576, &n,
	    msg, msg_size)) != AC_OK)
		return err;
	cfg->provider_max_response = (size_t)n;
	if ((err = get_int("SSE_HEARTBEAT_S", dotenv, 15, 1, 300, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->heartbeat_s = (int)n;
	if ((err = get_int("EVENT_LOOP", dotenv, 1, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->event_loop = (int)n;
	if ((err = get_int("CLIENT_QUEUE_BYTES", dotenv, 256 * 1024, 4096, 64LL * 1048576, &n, msg,
	    msg_size)) != AC_OK)
		return err;
	cfg->client_queue_bytes = (size_t)n;
	if ((err = get_int("PAGE_CACHE_BYTES", dotenv, 4 * 1048576, 0, 1024LL * 1048576, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->page_cache_bytes = (size_t)n;
	if ((err = setting("REASONING", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v != NULL && *v != '\0' && strcmp(v, "stream") != 0 && strcmp(v, "hidden") != 0) {
		snprintf(msg, msg_size, "REASONING: '%s' is not hidden or stream", v);
		return AC_EINVAL;
	}
	cfg->reasoning_stream = v != NULL && strcmp(v, "stream") == 0;
	if ((err = get_str("SYSTEM_PROMPT", dotenv, AC_DEFAULT_SYSTEM_PROMPT, cfg->system_prompt,
	    sizeof(cfg->system_prompt), msg, msg_size)) != AC_OK)
		return err;
	if ((err = get_str("MODELS_FILE", dotenv, "", cfg->models_file, sizeof(cfg->models_file), msg,
	    msg_size)) != AC_OK)
		return err;
	/* Unset: ./conf/models.conf when there is one (a checkout), else the copy compiled in. */
	models = cfg->models_file[0] != '\0' ? cfg->models_file : NULL;
	if (models == NULL && (f = fopen("conf/models.conf", "r")) != NULL) {
		fclose(f);
		models = "conf/models.conf";
	}
	return ac_models_load(&cfg->models, models, msg, msg_size);
}

/* The operations' settings: per-user limits, the automatic titles, retention. */
static enum ac_err
load_ops(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size)
{
	long long n;
	enum ac_err err;

	if ((err = get_int("CHAT_RATE_PER_MINUTE", dotenv, 30, 0, 1000000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->limits.rate_per_minute = (int)n;
	if ((err = get_int("TOKENS_PER_DAY", dotenv, 0, 0, 1000000000000LL, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->limits.tokens_per_day = n;
	if ((err = get_int("CHAT_CONCURRENCY_PER_USER", dotenv, 4, 0, 100000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->limits.concurrency = (int)n;
	if ((err = get_int("AUTO_TITLE", dotenv, 1, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->auto_title = (int)n;
	if ((err = get_int("RETENTION_DAYS", dotenv, 0, 0, 36500, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->retention_days = (int)n;
	if ((err = get_int("RETENTION_INTERVAL_S", dotenv, 3600, 1, 86400, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->retention_interval_s = (int)n;
	return AC_OK;
}

/* Accounts: AUTH and the settings of tokens, passwords and the login limits. */
static enum ac_err
load_auth(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size)
{
	char tmp[64];
	const char *v;
	long long n;
	enum ac_err err;

	if ((err = setting("AUTH", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v == NULL || *v == '\0' || strcmp(v, "token") == 0)
		cfg->auth_mode = AC_AUTH_TOKEN;
	else if (strcmp(v, "remote-user") == 0)
		cfg->auth_mode = AC_AUTH_REMOTE_USER;
	else if (strcmp(v, "none") == 0)
		cfg->auth_mode = AC_AUTH_NONE;
	else {
		snprintf(msg, msg_size, "AUTH: '%s' is not token, remote-user or none", v);
		return AC_EINVAL;
	}
	if ((err = get_str("JWT_SECRET", dotenv, "", cfg->jwt_secret, sizeof(cfg->jwt_secret), msg,
	    msg_size)) != AC_OK)
		return err;
	if (cfg->jwt_secret[0] != '\0' && strlen(cfg->jwt_secret) < AC_JWT_SECRET_MIN) {
		snprintf(msg, msg_size, "JWT_SECRET: shorter than %d bytes (make one with: openssl rand -hex 32)",
		    AC_JWT_SECRET_MIN);
		return AC_EINVAL;
	}
	if ((err = get_int("ACCESS_TOKEN_EXPIRE_MINUTES", dotenv, 60, 1, 525600, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->token_expire_min = (int)n;
	if ((err = setting("REGISTRATION", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v != NULL && *v != '\0' && strcmp(v, "open") != 0 && strcmp(v, "closed") != 0) {
		snprintf(msg, msg_size, "REGISTRATION: '%s' is not open or closed", v);
		return AC_EINVAL;
	}
	cfg->registration_open = v == NULL || *v == '\0' || strcmp(v, "open") == 0;
	if ((err = get_int("LOGIN_WINDOW_S", dotenv, 900, 1, 86400, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->login_window_s = (int)n;
	if ((err = get_int("LOGIN_MAX_FAILURES_PER_EMAIL", dotenv, 5, 0, 1000000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->login_max_email = (int)n;
	if ((err = get_int("LOGIN_MAX_FAILURES_PER_ADDR", dotenv, 20, 0, 1000000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->login_max_addr = (int)n;
	if ((err = get_int("PASSWORD_HASH_CONCURRENCY", dotenv, 2, 1, 64, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->password_hash_concurrency = (int)n;
	/* OWASP's minimum for argon2id: 19 MiB, 2 passes. */
	if ((err = get_int("PASSWORD_HASH_MEMORY_KIB", dotenv, 19456, 19456, 4194304, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->password_hash_memory_kib = (int)n;
	if ((err = get_int("PASSWORD_HASH_PASSES", dotenv, 2, 2, 100, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->password_hash_passes = (int)n;
	if ((err = get_str("JWT_PUBLIC_KEY_FILE", dotenv, "", cfg->jwt_public_key_file, sizeof(cfg->jwt_public_key_file),
	    msg, msg_size)) != AC_OK)
		return err;
	if ((err = get_str("JWT_ISSUER", dotenv, "", cfg->jwt_issuer, sizeof(cfg->jwt_issuer), msg, msg_size)) != AC_OK)
		return err;
	if ((err = get_str("JWT_AUDIENCE", dotenv, "", cfg->jwt_audience, sizeof(cfg->jwt_audience), msg,
	    msg_size)) != AC_OK)
		return err;
	/* An outside provider's tokens are only taken for the issuer and the audience named. */
	if (cfg->jwt_public_key_file[0] != '\0' && (cfg->jwt_issuer[0] == '\0' || cfg->jwt_audience[0] == '\0')) {
		snprintf(msg, msg_size, "JWT_PUBLIC_KEY_FILE: needs JWT_ISSUER and JWT_AUDIENCE (the outside "
		    "provider's iss, and this API's aud)");
		return AC_EINVAL;
	}
	return AC_OK;
}

/* LOG_FORMAT, TRUST_REQUEST_ID, METRICS, METRICS_ALLOW (checked by common/metrics.c). */
static enum ac_err
load_observability(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size)
{
	char tmp[64];
	const char *v;
	long long n;
	enum ac_err err;

	if ((err = setting("LOG_FORMAT", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v != NULL && *v != '\0' && strcmp(v, "text") != 0 && strcmp(v, "json") != 0) {
		snprintf(msg, msg_size, "LOG_FORMAT: '%s' is not text or json", v);
		return AC_EINVAL;
	}
	cfg->log_json = v != NULL && strcmp(v, "json") == 0;
	if ((err = get_int("TRUST_REQUEST_ID", dotenv, 0, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->trust_request_id = (int)n;
	if ((err = get_int("METRICS", dotenv, 0, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->metrics = (int)n;
	if ((err = get_str("METRICS_ALLOW", dotenv, "127.0.0.0/8,::1", cfg->metrics_allow,
	    sizeof(cfg->metrics_allow), msg, msg_size)) != AC_OK)
		return err;
	return ac_metrics_allow_check(cfg->metrics_allow, msg, msg_size);
}

/* The settings, with dotenv the text of the .env file (NULL: none). */
static enum ac_err
load(struct ac_config *cfg, const char *dotenv, char *msg, size_t msg_size)
{
	char tmp[AC_PATH_MAX];
	const char *v;
	long long n;
	enum ac_err err;

	memset(cfg, 0, sizeof(*cfg));
	msg[0] = '\0';

	if ((err = setting("DATABASE_URL", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	err = parse_database_url(cfg, v != NULL && *v != '\0' ? v : "sqlite:///./ai_chat.db", msg, msg_size);
	if (err != AC_OK)
		return err;

	if ((err = get_int("PORT", dotenv, 8080, 1, 65535, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->port = (int)n;
	if ((err = get_int("WORKER_PROCESSES", dotenv, 2, 1, 64, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->processes = (int)n;
	if ((err = get_int("WORKER_THREADS", dotenv, 64, 1, 1024, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->threads = (int)n;
	if ((err = get_int("MAX_BODY_BYTES", dotenv, 1048576, 1024, 64LL * 1048576, &n, msg,
	    msg_size)) != AC_OK)
		return err;
	cfg->max_body = (size_t)n;
	if ((err = get_int("MAX_IMPORT_BYTES", dotenv, 50LL * 1048576, 1024, 1024LL * 1048576, &n, msg,
	    msg_size)) != AC_OK)
		return err;
	cfg->max_import = (size_t)n;
	if ((err = get_int("DB_BUSY_TIMEOUT_MS", dotenv, 5000, 0, 600000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->busy_timeout_ms = (int)n;
	if ((err = get_int("DB_STATEMENT_TIMEOUT_MS", dotenv, 30000, 0, 3600000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->statement_timeout_ms = (int)n;
	if ((err = get_int("DB_PREPARED", dotenv, 1, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->db_prepared = (int)n;
	if ((err = get_int("DB_POOL_SIZE", dotenv, 10, 1, 1000, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->db_pool_size = (int)n;

	if ((err = setting("CORS_ORIGINS", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if ((err = parse_origins(cfg, v != NULL ? v : "*", msg, msg_size)) != AC_OK)
		return err;

	if ((err = setting("FCGI_SOCKET", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v != NULL && *v != '\0') {
		if (strlen(v) >= sizeof(cfg->socket_path)) {
			snprintf(msg, msg_size, "FCGI_SOCKET: a unix socket path must be under %zu bytes",
			    sizeof(cfg->socket_path));
			return AC_EINVAL;
		}
		memcpy(cfg->socket_path, v, strlen(v) + 1);
	}
	if ((err = setting("FCGI_SOCKET_MODE", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	cfg->socket_mode = 0660;
	if (v != NULL && *v != '\0') {
		char *end;
		unsigned long mode;

		errno = 0;
		mode = strtoul(v, &end, 8);
		if (errno != 0 || *end != '\0' || mode > 0777) {
			snprintf(msg, msg_size, "FCGI_SOCKET_MODE: '%s' is not an octal mode such as 0660", v);
			return AC_EINVAL;
		}
		cfg->socket_mode = (unsigned)mode;
	}
	if ((err = setting("FCGI_ALLOWED_PEERS", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if ((err = parse_peers(cfg, v != NULL ? v : "", msg, msg_size)) != AC_OK)
		return err;
	if ((err = setting("FCGI_SOCKET_GROUP", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	if (v != NULL && *v != '\0') {
		if (strlen(v) >= sizeof(cfg->socket_group)) {
			snprintf(msg, msg_size, "FCGI_SOCKET_GROUP: the group name is too long");
			return AC_EINVAL;
		}
		memcpy(cfg->socket_group, v, strlen(v) + 1);
	}
	if ((err = get_int("FCGI_READ_TIMEOUT_S", dotenv, 30, 1, 3600, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->read_timeout_s = (int)n;
	if ((err = load_provider(cfg, dotenv, msg, msg_size)) != AC_OK)
		return err;
	if ((err = load_observability(cfg, dotenv, msg, msg_size)) != AC_OK)
		return err;
	if ((err = setting("LOG_LEVEL", tmp, sizeof(tmp), dotenv, &v, msg, msg_size)) != AC_OK)
		return err;
	cfg->log_level = AC_LOG_INFO;
	if (v != NULL && *v != '\0' && ac_log_level_parse(v, &cfg->log_level) != AC_OK) {
		snprintf(msg, msg_size, "LOG_LEVEL: '%s' is not error, warn, info or debug", v);
		return AC_EINVAL;
	}
	if ((err = get_str("LOG_FILE", dotenv, "", cfg->log_file, sizeof(cfg->log_file), msg, msg_size)) != AC_OK)
		return err;
	if ((err = get_int("LOG_CONTENT", dotenv, 0, 0, 1, &n, msg, msg_size)) != AC_OK)
		return err;
	cfg->log_content = (int)n;
	if ((err = load_auth(cfg, dotenv, msg, msg_size)) != AC_OK)
		return err;
	return load_ops(cfg, dotenv, msg, msg_size);
}

enum ac_err
ac_config_load(struct ac_config *cfg, const char *path, char *msg, size_t msg_size)
{
	FILE *f = fopen(path != NULL ? path : ".env", "r");
	char *text = NULL;
	size_t n = 0;
	enum ac_err err;

	/* Read once; every setting is then looked up in memory. */
	if (f != NULL) {
		text = malloc(DOTENV_MAX + 1);
		if (text == NULL) {
			fclose(f);
			snprintf(msg, msg_size, "out of memory reading %s", path != NULL ? path : ".env");
			return AC_ENOMEM;
		}
		n = fread(text, 1, DOTENV_MAX + 1, f);
		fclose(f);
		if (n > DOTENV_MAX) {
			free(text);
			snprintf(msg, msg_size, "%s: larger than %d bytes", path != NULL ? path : ".env", DOTENV_MAX);
			return AC_EINVAL;
		}
		text[n] = '\0';
	}
	err = load(cfg, text, msg, msg_size);
	free(text);
	return err;
}
