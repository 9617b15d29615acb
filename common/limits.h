/*
 * Per-user send limits (issue 11), kept in the database so that every worker process and every host
 * shares them: CHAT_RATE_PER_MINUTE sends, TOKENS_PER_DAY provider tokens, CHAT_CONCURRENCY_PER_USER
 * generations at once.  Written once over db.h (common/limits.c; tables of sql/<engine>/005_limits.sql).
 *
 * A send asks ac_limits_acquire before it stores anything; refused, it answers 429 with the verdict's
 * detail and Retry-After.  Admitted, it holds a generation slot (when the concurrency limit is on)
 * until ac_limits_release, which every send that was admitted calls once at its end, whatever came of
 * it, with the provider's tokens it used.  A process that dies leaves its slots until their own
 * deadline (the send's lock).
 *
 * The rate is a GCRA (the generic cell rate algorithm, as nginx's limit_req with a burst): each send
 * moves a per-user time forward by a minute / CHAT_RATE_PER_MINUTE, and a send is refused while that
 * time would lie more than a minute ahead.  So CHAT_RATE_PER_MINUTE sends pass at once from idle, then
 * one per minute / CHAT_RATE_PER_MINUTE; in no minute do more than twice the rate pass.  Tokens count
 * per UTC day: a send is refused once the day's tokens have reached TOKENS_PER_DAY (the send that
 * crosses it is answered, and counted).  0 turns each limit off.
 */
#ifndef AC_LIMITS_H
#define AC_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "repo.h"

struct ac_limits_conf {
	int rate_per_minute;		/* CHAT_RATE_PER_MINUTE; 0: no limit */
	int64_t tokens_per_day;		/* TOKENS_PER_DAY; 0: no limit */
	int concurrency;		/* CHAT_CONCURRENCY_PER_USER; 0: no limit */
};

/* Whether any limit is on (when none is, nothing is read or written). */
bool ac_limits_on(const struct ac_limits_conf *lc);

struct ac_limit {
	bool refused;
	int retry_after;	/* seconds, when refused */
	char detail[160];	/* when refused */
	int64_t slot;		/* admitted: the generation slot held (0: none) */
};

/*
 * Admits a send of user_id at now (microseconds since the epoch), or refuses it (out->refused).
 * Admitted, the send counts against the rate, and holds a slot until slot_until at most.
 * One write transaction, which does not wait for the disk (AC_TXN_WRITE_LAZY: a power cut may lose
 * the last counts, never a chat's data); AC_EBUSY or AC_EDB when the database is not available.
 */
enum ac_err ac_limits_acquire(struct ac_repo *r, const struct ac_limits_conf *lc, struct ac_str user_id,
    int64_t now, int64_t slot_until, struct ac_limit *out);

/* The admitted send's end: its slot given back, and tokens (the provider's, 0 for none) counted to
 * the user's day of now. */
enum ac_err ac_limits_release(struct ac_repo *r, struct ac_str user_id, int64_t slot, int64_t tokens,
    int64_t now);

#endif
