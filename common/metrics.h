/*
 * Prometheus metrics (METRICS=1): counters and histograms in one shared anonymous mapping, made by
 * ac_metrics_init before the supervisor forks its workers, so that every process adds to the same
 * numbers with atomic operations and a scrape answered by any one of them sees the sum of all.  A
 * worker restarted by the supervisor inherits the mapping again; nothing is lost but the dead
 * process's own process_* figures.
 *
 * Labels only ever hold bounded values known at start: route templates (never raw paths), method
 * names, status codes, model aliases of the registry, outcomes, token kinds, reasons.  Never a user
 * id, a chat id or any content.  With METRICS=0 nothing is mapped and every call here is a no-op.
 */
#ifndef AC_METRICS_H
#define AC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

struct ac_config;

#define AC_METRICS_ROUTES 32	/* route templates, "other" included */

/* Why a request was refused for a limit (rate_limited_total{limit}). */
enum ac_metrics_limit {
	AC_LIMIT_PROVIDER,		/* the provider's own 429 ended the call (our retries spent) */
	AC_LIMIT_USER_REQUESTS,		/* a user's requests per minute (fed by the limits) */
	AC_LIMIT_USER_TOKENS,		/* a user's token quota */
	AC_LIMIT_USER_CONCURRENT,	/* a user's chats at once */
	AC_LIMIT_LOGIN,			/* failed logins per email or address (h_auth.c) */
	AC_LIMIT_COUNT
};

/* Why an authentication failed (auth_failures_total{reason}; identity.c, h_auth.c). */
enum ac_metrics_auth {
	AC_AUTH_MISSING,	/* no credentials where some are required */
	AC_AUTH_MALFORMED,	/* not a bearer token or key we can read */
	AC_AUTH_INVALID,	/* a bad signature, an unknown key, a wrong password */
	AC_AUTH_EXPIRED,
	AC_AUTH_REVOKED,	/* the account is gone, or logged out since (the token's version) */
	AC_AUTH_PASSWORD,	/* a login with a wrong email or password */
	AC_AUTH_COUNT
};

/* Checks METRICS_ALLOW (IPv4/IPv6 addresses and CIDR ranges, comma-separated) for config.c. */
enum ac_err ac_metrics_allow_check(const char *list, char *msg, size_t msg_size);

/*
 * Maps the shared counters (when cfg->metrics); once, in the first process, before any fork or
 * thread.  routes: the route templates ("/chats/{chat_id}"), at most AC_METRICS_ROUTES - 1.
 */
enum ac_err ac_metrics_init(const struct ac_config *cfg, const char *const *routes, int nroutes);
bool ac_metrics_on(void);
/* A process that serves requests registers itself (its process_* figures count) and leaves. */
void ac_metrics_process_add(pid_t pid);
void ac_metrics_process_remove(pid_t pid);

/* Whether addr (REMOTE_ADDR) may read the metrics (METRICS_ALLOW). */
bool ac_metrics_allowed(const char *addr);

/* One request answered: its route template (NULL: "other"), method, status, duration. */
void ac_metrics_http(const char *route, const char *method, int status, int64_t duration_us);
/* A provider call ended (model: an index in the registry, -1: other; outcome: enum ac_llm_fail). */
void ac_metrics_provider(int model, int outcome, int64_t duration_us, int64_t ttft_us,
    int64_t prompt_tokens, int64_t completion_tokens);
void ac_metrics_in_flight(int delta);
void ac_metrics_retry(void);
void ac_metrics_db_error(void);
void ac_metrics_auth_failure(enum ac_metrics_auth reason);
void ac_metrics_rate_limited(enum ac_metrics_limit limit);

/* The exposition (text format 0.0.4) of everything, summed over every process, into b. */
void ac_metrics_write(struct ac_buf *b);

#endif
