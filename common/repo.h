/*
 * The repository: every read and write of chats and messages.  Nothing here names the storage
 * engine: the logic is written once (common/repo*.c) over the engine interface of db.h, which
 * SQLite and PostgreSQL implement.
 *
 * A struct ac_repo is one connection: use it from one thread at a time.  Rows are handed to a
 * callback; the strings in a row are valid only during the call.  Every lookup of a chat is by its
 * id AND its user: another user's chat is AC_ENOTFOUND, exactly like a missing one.
 */
#ifndef AC_REPO_H
#define AC_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "err.h"

struct ac_repo;

struct ac_chat {
	struct ac_str id;
	struct ac_str user_id;
	struct ac_str title;	/* ptr NULL: no title */
	int64_t created_at;	/* microseconds since the epoch, UTC */
	int64_t updated_at;
	int64_t message_count;
};

enum ac_role {
	AC_ROLE_USER,
	AC_ROLE_ASSISTANT,
};

struct ac_message {
	int64_t id;
	struct ac_str chat_id;
	enum ac_role role;
	struct ac_str content;
	int64_t created_at;
	bool incomplete;	/* an assistant reply cut short */
	struct ac_str model;	/* the provider's model id of a reply (ptr NULL for user messages) */
	int64_t prompt_tokens;
	int64_t completion_tokens;
};

/* Which messages of a chat: a page of at most limit, always returned oldest first. */
struct ac_page {
	int64_t limit;
	int64_t cursor;		/* a message id (0 and forward: from the start) */
	bool backward;		/* false: the first messages with id > cursor; true: the last with id < cursor */
};

typedef enum ac_err (*ac_chat_fn)(void *arg, const struct ac_chat *chat);
typedef enum ac_err (*ac_message_fn)(void *arg, const struct ac_message *msg);

/*
 * Brings the database to the current schema (creating it if needed): run once at start, before
 * connections are opened.  Safe when several processes (and hosts) start at once.
 */
enum ac_err ac_repo_migrate(const struct ac_db_conf *conf, char *msg, size_t msg_size);

enum ac_err ac_repo_open(const struct ac_db_conf *conf, struct ac_repo **out);
void ac_repo_close(struct ac_repo *r);

/* The storage engine's words for the last failure, for a 503 detail (never NULL). */
const char *ac_repo_errmsg(const struct ac_repo *r);

/* Whether the database answers a read. */
enum ac_err ac_repo_ping(struct ac_repo *r);

enum ac_err ac_repo_chat_create(struct ac_repo *r, struct ac_str user_id, struct ac_str title,
    ac_chat_fn fn, void *arg);
enum ac_err ac_repo_chat_get(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    ac_chat_fn fn, void *arg);
/* The user's chats, newest updated_at first; *total counts them all. */
enum ac_err ac_repo_chat_list(struct ac_repo *r, struct ac_str user_id, int64_t limit, int64_t offset,
    int64_t *total, ac_chat_fn fn, void *arg);
/* Sets the title and moves updated_at forward. */
enum ac_err ac_repo_chat_rename(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, ac_chat_fn fn, void *arg);
/* Deletes the chat and its messages. */
enum ac_err ac_repo_chat_delete(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id);

/*
 * A page of the chat's messages.  *more says whether more lie beyond it in the paging direction; it
 * is set before the first row is handed to fn.
 */
enum ac_err ac_repo_message_list(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_page *page, bool *more, ac_message_fn fn, void *arg);

/* ---- sending a message to the model ---- */

#define AC_IDEMPOTENCY_TTL_US (24LL * 3600 * 1000000)	/* a key is remembered this long */

enum ac_send_state {
	AC_SEND_NEW,		/* the message was stored: answer it */
	AC_SEND_RETRY,		/* the key's earlier send stored the message but got no reply: answer it */
	AC_SEND_DONE,		/* the key's earlier send was answered: reply_message_id says with what */
	AC_SEND_BUSY,		/* the key's earlier send is still running */
	AC_SEND_MISMATCH,	/* the key was used for another chat or message */
};

struct ac_send {
	enum ac_send_state state;
	int64_t user_message_id;
	int64_t reply_message_id;	/* AC_SEND_DONE */
	int64_t replace_id;		/* an earlier (incomplete) reply to the same message, or 0 */
};

/*
 * Starts a send in one transaction: checks the chat is the user's, and stores the user's message
 * (moving the chat's updated_at).  With an idempotency key (ptr not NULL), a repeat of an earlier
 * send is recognised instead (see enum ac_send_state); lock_until_us keeps others from retrying it
 * while this one runs.
 */
enum ac_err ac_repo_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str content, struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out);

/*
 * Starts a regeneration: the chat's last user message, and the reply after it to replace (if any).
 * AC_ENOTFOUND for a chat that is not the user's; out->user_message_id is 0 when the chat has no
 * user message.
 */
enum ac_err ac_repo_regenerate_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_send *out);

/*
 * The chat's messages up to message upto, newest first, for building the model's context: fn
 * returns AC_OK for more, anything else to stop (AC_ETOOBIG: enough, not an error).
 */
enum ac_err ac_repo_history(struct ac_repo *r, struct ac_str chat_id, int64_t upto, ac_message_fn fn,
    void *arg);

struct ac_reply {
	struct ac_str content;
	struct ac_str model;
	int64_t prompt_tokens;
	int64_t completion_tokens;
	bool incomplete;
	int64_t replace_id;		/* a reply this one replaces, deleted in the same transaction */
	struct ac_str idem_key;		/* ptr NULL: none */
	struct ac_str user_id;
};

/*
 * Stores the assistant's reply, moves the chat's updated_at, and (for a complete reply) records it
 * as the answer of the idempotency key.  *id and *created_at describe the stored message.
 */
enum ac_err ac_repo_reply_add(struct ac_repo *r, struct ac_str chat_id, const struct ac_reply *reply,
    int64_t *id, int64_t *created_at);

/* Releases an idempotency key's lock after a failed send, so a repeat may retry at once. */
enum ac_err ac_repo_send_unlock(struct ac_repo *r, struct ac_str user_id, struct ac_str idem_key);

/* One message of a chat by id (for replaying an answer). */
enum ac_err ac_repo_message_get(struct ac_repo *r, struct ac_str chat_id, int64_t id, ac_message_fn fn,
    void *arg);

#endif
