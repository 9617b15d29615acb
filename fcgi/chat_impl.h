/*
 * A send in progress (chat.c), shared with the routes that begin one (chat_routes.c): POST /chat,
 * regenerate, edit.  A route parses and validates its request, begins the send in the repository,
 * and hands it to ac_send_proceed(), which answers, calls the model or parks the call on the loop.
 */
#ifndef AC_CHAT_IMPL_H
#define AC_CHAT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/provider.h"
#include "../common/repo.h"
#include "../common/valid.h"
#include "loop.h"
#include "worker.h"

/* One send in progress. */
struct send {
	struct ac_ctx *c;
	const struct ac_model *model;
	bool model_named;		/* the request named the model (else the chat's, or the default) */
	struct ac_str prompt;		/* the system prompt: the chat's, or SYSTEM_PROMPT */
	char *prompt_owned;		/* the chat's, copied */
	struct ac_str chat_id;
	struct ac_str user_id;
	struct ac_str idem_key;		/* ptr NULL: none */
	bool stream;
	struct ac_send state;
	bool finished;			/* the send's reply row is settled */
	bool admitted;			/* past the per-user limits, not yet released (send_limits.c) */
	int64_t slot;			/* the generation slot it holds (0: none) */
	bool titles;			/* POST /chat: a first exchange names the chat (auto_title.c) */

	/* The context, gathered newest first. */
	struct ac_buf text;		/* the messages' contents, one after another */
	size_t *offset;			/* where each message's content starts in text */
	size_t *length;
	enum ac_llm_role *role;
	size_t count;
	size_t cap;
	int64_t budget;
	int64_t used;
	bool too_large;			/* the newest message alone is over the budget */
	int64_t too_large_tokens;

	struct ac_llm_result res;
	struct ac_buf event;		/* one SSE event's data */

	/* Parked on the event loop: the call is the send's own, and so are the strings it keeps. */
	struct ac_llm_hooks hooks;
	struct ac_provider *call;
	struct ac_park *park;
	char *owned;			/* chat_id and user_id, copied */
	char new_chat_id[AC_UUID_LEN + 1];	/* a chat this send made (POST /chat without chat_id) */
};

/* A send for c, or NULL (the 500 answered). */
struct send *ac_send_new(struct ac_ctx *c);
void ac_send_free(struct send *s);
/* The admitted send's end, once (a no-op after the first, or for a send not admitted): its
 * generation slot given back, the provider's tokens counted.  finish() calls it; a route calls it
 * for a send that never reached the model. */
void ac_send_limits_end(struct send *s, int64_t tokens);
/* What a send that began does next, by the state the repository gave it. */
void ac_send_proceed(struct send *s, struct ac_verrs *v);

/* A conservative estimate of a text's tokens; the tokens of history a model's context holds; and the
 * 413 for a message that alone does not fit. */
int64_t ac_send_estimate_tokens(size_t bytes);
int64_t ac_send_history_budget(const struct send *s);
void ac_send_too_long(struct send *s, int64_t tokens);

#endif
