/*
 * The per-user send limits (common/limits.h) on the HTTP side: a send (POST /chat, regenerate, edit)
 * is admitted before it stores anything, or answered 429 with Retry-After; an admitted send gives its
 * slot back, with the provider's tokens it used, once at its end (fcgi/chat.c's finish, or the
 * handler's own end when the model was never called).
 */
#include <stdio.h>

#include "../common/limits.h"
#include "../common/log.h"
#include "../common/util.h"
#include "handlers.h"

bool
ac_send_admit(struct ac_ctx *c, struct ac_str user_id, int64_t slot_until, int64_t *slot)
{
	struct ac_limit verdict;
	enum ac_err err;
	char ra[16];

	*slot = 0;
	if (!ac_limits_on(&c->cfg->limits))
		return true;
	err = ac_limits_acquire(c->repo, &c->cfg->limits, user_id, ac_now_us(), slot_until, &verdict);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		return false;
	}
	if (verdict.refused) {
		ac_resp_error(c, 429, verdict.detail);
		snprintf(ra, sizeof(ra), "%d", verdict.retry_after);
		ac_resp_header(c, "Retry-After", ra);
		return false;
	}
	*slot = verdict.slot;
	return true;
}

void
ac_send_release(struct ac_ctx *c, struct ac_str user_id, int64_t slot, int64_t tokens)
{
	enum ac_err err;

	if ((slot <= 0 && tokens <= 0) || !ac_limits_on(&c->cfg->limits))
		return;
	err = ac_limits_release(c->repo, user_id, slot, tokens, ac_now_us());
	if (err == AC_EBUSY) {
		/* Once more: a slot kept costs the user a place until the send's lock runs out. */
		err = ac_limits_release(c->repo, user_id, slot, tokens, ac_now_us());
	}
	if (err != AC_OK)
		ac_log(AC_LOG_WARN, "a send's end could not be counted (%s): its generation slot is held until its "
		    "lock runs out, and %lld tokens are not counted", ac_strerror(err), (long long)tokens);
}
