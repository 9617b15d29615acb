/* Per-user send limits over the engine interface (limits.h; tables of sql/<engine>/005_limits.sql). */
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "repo_impl.h"

#define MINUTE_US (60LL * 1000000)
#define DAY_US (86400LL * 1000000)

enum {
	S_USER_ENSURE,
	S_USER_GET,
	S_USER_RATE,
	S_SLOTS_EXPIRE,
	S_SLOTS_COUNT,
	S_SLOT_TAKE,
	S_SLOT_GIVE,
	S_TOKENS_ADD,
	S_COUNT
};

static const struct ac_sql sql[S_COUNT] = {
	[S_USER_ENSURE] = { "INSERT INTO user_limits (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING", NULL },
	/* PostgreSQL: the user's row locked till the end, so that one user's admissions take turns on
	 * every host (SQLite's write lock already orders them). */
	[S_USER_GET] = { "SELECT rate_tat, token_day, tokens FROM user_limits WHERE user_id = $1",
	    "SELECT rate_tat, token_day, tokens FROM user_limits WHERE user_id = $1 FOR UPDATE" },
	[S_USER_RATE] = { "UPDATE user_limits SET rate_tat = $2 WHERE user_id = $1", NULL },
	[S_SLOTS_EXPIRE] = { "DELETE FROM generation_slots WHERE user_id = $1 AND until <= $2", NULL },
	[S_SLOTS_COUNT] = { "SELECT count(*) FROM generation_slots WHERE user_id = $1", NULL },
	[S_SLOT_TAKE] = { "INSERT INTO generation_slots (user_id, until) VALUES ($1, $2) RETURNING id", NULL },
	[S_SLOT_GIVE] = { "DELETE FROM generation_slots WHERE id = $1", NULL },
	[S_TOKENS_ADD] = { "INSERT INTO user_limits (user_id, token_day, tokens) VALUES ($1, $2, $3) "
	    "ON CONFLICT (user_id) DO UPDATE SET tokens = CASE WHEN user_limits.token_day = excluded.token_day "
	    "THEN user_limits.tokens + excluded.tokens ELSE excluded.tokens END, token_day = excluded.token_day", NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_LIMITS, sql, i, out);
}

bool
ac_limits_on(const struct ac_limits_conf *lc)
{
	return lc->rate_per_minute > 0 || lc->tokens_per_day > 0 || lc->concurrency > 0;
}

/* Seconds from now to at, rounded up, at least 1. */
static int
seconds_until(int64_t now, int64_t at)
{
	int64_t s = (at - now + 999999) / 1000000;

	return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}

static void
refuse(struct ac_limit *out, int retry_after, const char *detail)
{
	out->refused = true;
	out->retry_after = retry_after;
	snprintf(out->detail, sizeof(out->detail), "%s", detail);
}

/* Inside the transaction: the checks, and (admitted) the rate moved on and the slot taken. */
static enum ac_err
admit(struct ac_repo *r, const struct ac_limits_conf *lc, struct ac_str user_id, int64_t now,
    int64_t slot_until, struct ac_limit *out)
{
	struct ac_stmt *s;
	int64_t tat = 0, day = 0, tokens = 0, new_tat = 0, slots = 0;
	enum ac_err err;
	bool row = false;
	char detail[160];

	if ((err = stmt(r, S_USER_ENSURE, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	if ((err = ac_repo_run(s, NULL)) != AC_OK)
		return err;
	if ((err = stmt(r, S_USER_GET, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		tat = ac_db_col_int(s, 0);
		day = ac_db_col_int(s, 1);
		tokens = ac_db_col_int(s, 2);
	}
	ac_db_done(s);
	if (err != AC_OK)
		return err;

	if (lc->tokens_per_day > 0 && day == now / DAY_US && tokens >= lc->tokens_per_day) {
		snprintf(detail, sizeof(detail), "Token limit reached: %lld tokens a day (TOKENS_PER_DAY); "
		    "it resets at midnight UTC", (long long)lc->tokens_per_day);
		refuse(out, seconds_until(now, (now / DAY_US + 1) * DAY_US), detail);
		return AC_OK;
	}
	if (lc->concurrency > 0) {
		if ((err = stmt(r, S_SLOTS_EXPIRE, &s)) != AC_OK)
			return err;
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_int(s, 2, now);
		if ((err = ac_repo_run(s, NULL)) != AC_OK)
			return err;
		if ((err = stmt(r, S_SLOTS_COUNT, &s)) != AC_OK)
			return err;
		ac_db_bind_str(s, 1, user_id);
		if ((err = ac_repo_one_int(s, &slots)) != AC_OK)
			return err;
		if (slots >= lc->concurrency) {
			snprintf(detail, sizeof(detail), "Too many replies at once: at most %d generations per user "
			    "(CHAT_CONCURRENCY_PER_USER)", lc->concurrency);
			refuse(out, 1, detail);
			return AC_OK;
		}
	}
	if (lc->rate_per_minute > 0) {
		int64_t interval = MINUTE_US / lc->rate_per_minute;

		new_tat = (tat > now ? tat : now) + interval;
		if (new_tat - now > MINUTE_US) {
			snprintf(detail, sizeof(detail), "Too many messages: at most %d a minute (CHAT_RATE_PER_MINUTE)",
			    lc->rate_per_minute);
			refuse(out, seconds_until(now, new_tat - MINUTE_US), detail);
			return AC_OK;
		}
		if ((err = stmt(r, S_USER_RATE, &s)) != AC_OK)
			return err;
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_int(s, 2, new_tat);
		if ((err = ac_repo_run(s, NULL)) != AC_OK)
			return err;
	}
	if (lc->concurrency > 0) {
		if ((err = stmt(r, S_SLOT_TAKE, &s)) != AC_OK)
			return err;
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_int(s, 2, slot_until);
		if ((err = ac_repo_one_int(s, &out->slot)) != AC_OK)
			return err == AC_ENOTFOUND ? AC_EDB : err;
	}
	return AC_OK;
}

enum ac_err
ac_limits_acquire(struct ac_repo *r, const struct ac_limits_conf *lc, struct ac_str user_id, int64_t now,
    int64_t slot_until, struct ac_limit *out)
{
	enum ac_err err;

	memset(out, 0, sizeof(*out));
	if (!ac_limits_on(lc))
		return AC_OK;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE_LAZY)) != AC_OK)
		return err;
	err = admit(r, lc, user_id, now, slot_until, out);
	if (err == AC_OK && out->refused) {
		/* Nothing of a refused send is kept (the user's row may stay, empty). */
		out->slot = 0;
	}
	err = ac_repo_end(r, err);
	if (err != AC_OK)
		out->slot = 0;
	return err;
}

enum ac_err
ac_limits_release(struct ac_repo *r, struct ac_str user_id, int64_t slot, int64_t tokens, int64_t now)
{
	struct ac_stmt *s;
	enum ac_err err;

	if (slot <= 0 && tokens <= 0)
		return AC_OK;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE_LAZY)) != AC_OK)
		return err;
	if (slot > 0 && (err = stmt(r, S_SLOT_GIVE, &s)) == AC_OK) {
		ac_db_bind_int(s, 1, slot);
		err = ac_repo_run(s, NULL);
	}
	if (err == AC_OK && tokens > 0 && (err = stmt(r, S_TOKENS_ADD, &s)) == AC_OK) {
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_int(s, 2, now / DAY_US);
		ac_db_bind_int(s, 3, tokens);
		err = ac_repo_run(s, NULL);
	}
	return ac_repo_end(r, err);
}
