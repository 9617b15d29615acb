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
	struct ac_str system_prompt;	/* ptr NULL: the default (SYSTEM_PROMPT) */
	struct ac_str model;		/* a registry alias; ptr NULL: the registry's default */
	bool pinned;
	bool archived;
};

/* PATCH /chats/{id}: the settings to change (set_* false: left as they are); a ptr NULL is null. */
struct ac_chat_update {
	bool set_title, set_system_prompt, set_model, set_pinned, set_archived;
	struct ac_str title;
	struct ac_str system_prompt;
	struct ac_str model;
	bool pinned;
	bool archived;
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
	int64_t parent_id;	/* the message this one follows, 0 for a first message */
	const int64_t *sibling_ids;	/* its alternatives, itself included, oldest first (message pages
					 * only; elsewhere NULL with sibling_count 0) */
	size_t sibling_count;
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
/* After a large request: the connection gives back the memory it grew for it (ac_db_trim). */
void ac_repo_trim(struct ac_repo *r);

/* The storage engine's words for the last failure, for a 503 detail (never NULL). */
const char *ac_repo_errmsg(const struct ac_repo *r);

/* Whether the database answers a read. */
enum ac_err ac_repo_ping(struct ac_repo *r);

enum ac_err ac_repo_chat_create(struct ac_repo *r, struct ac_str user_id, struct ac_str title,
    ac_chat_fn fn, void *arg);
enum ac_err ac_repo_chat_get(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    ac_chat_fn fn, void *arg);
/*
 * The chat's version: its updated_at, which every write to the chat or to what its pages show moves
 * forward (never twice to the same value).  For conditional GETs: one row, no messages read.
 */
enum ac_err ac_repo_chat_version(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    int64_t *version);
/* The user's chats: pinned first, then newest updated_at first; *total counts them all. */
enum ac_err ac_repo_chat_list(struct ac_repo *r, struct ac_str user_id, int64_t limit, int64_t offset,
    int64_t *total, ac_chat_fn fn, void *arg);
/* The same, of the user's archived chats (archived true) or the others. */
enum ac_err ac_repo_chat_list_archived(struct ac_repo *r, struct ac_str user_id, bool archived, int64_t limit,
    int64_t offset, int64_t *total, ac_chat_fn fn, void *arg);
/* Sets the title and moves updated_at forward. */
enum ac_err ac_repo_chat_rename(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, ac_chat_fn fn, void *arg);
/* Changes what u says (title, settings) and moves updated_at forward. */
enum ac_err ac_repo_chat_update(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_chat_update *u, ac_chat_fn fn, void *arg);
/* Deletes the chat and its messages. */
enum ac_err ac_repo_chat_delete(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id);

/*
 * A page of the chat's messages.  *more says whether more lie beyond it in the paging direction; it
 * is set before the first row is handed to fn.
 */
enum ac_err ac_repo_message_list(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_page *page, bool *more, ac_message_fn fn, void *arg);

/* ---- search (repo_search.c) ---- */

struct ac_search_hit {
	struct ac_str chat_id;
	struct ac_str chat_title;	/* ptr NULL: untitled */
	int64_t message_id;		/* 0: the chat's title matched */
	bool has_role;			/* false for a title */
	enum ac_role role;
	struct ac_str snippet;		/* plain text, matched words between \x02 and \x03 */
	int64_t created_at;		/* the message's, or the chat's for a title */
};

typedef enum ac_err (*ac_search_fn)(void *arg, const struct ac_search_hit *hit);

/*
 * The user's chat titles and shown messages (every branch) that match q, best first: its words
 * outside quotes each as a prefix, a quoted part as a phrase, all of them.  *total counts every hit.
 * Text with no word finds nothing.
 */
enum ac_err ac_repo_search(struct ac_repo *r, struct ac_str user_id, struct ac_str q, int64_t limit,
    int64_t offset, int64_t *total, ac_search_fn fn, void *arg);

/* ---- export and import (repo_export.c) ---- */

/* A message as exported and imported: every branch, with the active path marked. */
struct ac_export_message {
	int64_t id;
	int64_t parent_id;	/* the nearest shown message above it; 0: a first message */
	enum ac_role role;
	struct ac_str content;
	struct ac_str model;	/* a reply's provider model id (ptr NULL: none) */
	int64_t created_at;
	bool incomplete;
	bool active;
};

typedef enum ac_err (*ac_export_fn)(void *arg, const struct ac_export_message *m);

/* The user's next chat (archived ones too) in (created_at, id) order after the cursor (after_id ptr
 * NULL and after_created INT64_MIN: the first); AC_ENOTFOUND past the last. */
enum ac_err ac_repo_export_next_chat(struct ac_repo *r, struct ac_str user_id, int64_t after_created,
    struct ac_str after_id, ac_chat_fn fn, void *arg);
/* Up to limit of the chat's shown messages with ids above after_id, in id order (active_only: of the
 * active path); *rows counts them.  The chat's ownership is the caller's to check. */
enum ac_err ac_repo_export_messages(struct ac_repo *r, struct ac_str chat_id, int64_t after_id, int64_t limit,
    bool active_only, int64_t *rows, ac_export_fn fn, void *arg);

/*
 * An import is one transaction: ac_repo_import_begin, then for each chat ac_repo_import_chat (a new
 * id; the title, times and settings of chat), its messages in an order where parents come first
 * (parent_id the new id of an imported one), ac_repo_import_chat_done (its message_count); then
 * ac_repo_import_end(r, err), which commits on AC_OK and rolls back otherwise.
 */
enum ac_err ac_repo_import_begin(struct ac_repo *r);
enum ac_err ac_repo_import_chat(struct ac_repo *r, struct ac_str user_id, const struct ac_chat *chat,
    char id[37]);
enum ac_err ac_repo_import_message(struct ac_repo *r, struct ac_str chat_id, const struct ac_export_message *m,
    int64_t *id);
enum ac_err ac_repo_import_chat_done(struct ac_repo *r, struct ac_str chat_id);
enum ac_err ac_repo_import_end(struct ac_repo *r, enum ac_err err);

/* ---- sending a message to the model ---- */

/*
 * A send is one state machine, owned here; every transition is one transaction.
 *
 *   begin      ac_repo_send_begin (POST /chat), ac_repo_regenerate_begin, ac_repo_edit_begin:
 *              checks the chat is the user's, stores the user's message (send, edit), and a reply
 *              row under the user message it answers in state GENERATING, locked until lock_until
 *              (so that an idempotent repeat meanwhile is told the send is still running).
 *   context    ac_repo_history: the path from the chat's first message to that user message.
 *   finish     ac_repo_send_finish: GENERATING becomes COMPLETE (the reply), INCOMPLETE (cut short:
 *              what came is kept) or FAILED (nothing came: the row stays, hidden, keeping its
 *              place).  Every exit of a send that began, errors included, finishes it; a worker
 *              that dies leaves the row GENERATING until lock_until, after which it counts as FAILED.
 *
 * Nothing answered is ever deleted or overwritten: a repeat of a failed send answers in the failed
 * row; a regenerate (or a repeat after an incomplete reply) adds an alternative reply, a sibling,
 * shown only once it is complete and only if the reply it would replace is still the end of the
 * active path (else it stays an alternative).  A reply to a send in the active path is shown as
 * soon as it begins (hidden while GENERATING), so that sends made meanwhile in the same chat follow
 * it: concurrent sends are answered and stored in their order of arrival.
 *
 * An idempotency key belongs to one user message and names its send's reply row: a repeat finds
 * the answer by that link (DONE), is told the send still runs (BUSY), or answers again (RETRY).
 */

#define AC_IDEMPOTENCY_TTL_US (24LL * 3600 * 1000000)	/* a key is remembered this long */

enum ac_send_state {
	AC_SEND_NEW,		/* the message was stored: answer it in reply_id */
	AC_SEND_RETRY,		/* the key's earlier send got no complete reply: answer it in reply_id */
	AC_SEND_DONE,		/* the key's earlier send was answered: reply_id is the answer */
	AC_SEND_BUSY,		/* the key's earlier send is still running */
	AC_SEND_MISMATCH,	/* the key was used for another chat or message */
	AC_SEND_NO_MESSAGE,	/* regenerate: the chat has no user message; edit: no such message */
	AC_SEND_NOT_USER,	/* edit: the message is not the user's own message but a reply */
};

struct ac_send {
	enum ac_send_state state;
	int64_t user_message_id;
	int64_t reply_id;	/* the reply row (GENERATING for NEW and RETRY) */
};

/*
 * POST /chat: stores content as the user's message at the end of the chat's active path.  With an
 * idempotency key (ptr not NULL), a repeat of an earlier send is recognised instead.
 * AC_ENOTFOUND when the chat is not the user's.
 */
enum ac_err ac_repo_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str content, struct ac_str idem_key, int64_t lock_until, struct ac_send *out);

/* Answers the last user message of the active path again, as an alternative reply. */
enum ac_err ac_repo_regenerate_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    int64_t lock_until, struct ac_send *out);

/*
 * Stores content as an alternative (a sibling) of the user message message_id, makes the path to it
 * the active path, and begins its reply.  The old branch stays.
 */
enum ac_err ac_repo_edit_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    int64_t message_id, struct ac_str content, int64_t lock_until, struct ac_send *out);

/*
 * The model's context for a user message: the shown messages of the path from the chat's first
 * message to it, newest first.  fn returns AC_OK for more, anything else to stop (AC_ETOOBIG:
 * enough, not an error).
 */
enum ac_err ac_repo_history(struct ac_repo *r, struct ac_str chat_id, int64_t user_message_id,
    ac_message_fn fn, void *arg);

enum ac_reply_outcome {
	AC_REPLY_COMPLETE,
	AC_REPLY_INCOMPLETE,	/* cut short: content holds what came */
	AC_REPLY_FAILED,	/* nothing came */
};

struct ac_reply {
	enum ac_reply_outcome outcome;
	struct ac_str content;
	struct ac_str model;
	int64_t prompt_tokens;
	int64_t completion_tokens;
};

/*
 * Finishes the send that began as send: stores the reply in its row (or, if that row was taken
 * over meanwhile by a repeat after the lock ran out, in a new alternative: nothing is lost), moves
 * the chat's updated_at, and shows an alternative that completed if it may be shown.
 * AC_ENOTFOUND when the chat was deleted meanwhile.  *id and *created_at describe the stored reply.
 */
enum ac_err ac_repo_send_finish(struct ac_repo *r, struct ac_str chat_id, const struct ac_send *send,
    const struct ac_reply *reply, int64_t *id, int64_t *created_at);

/*
 * PUT /chats/{id}/active: makes the active path the one through message_id to the newest leaf
 * under it.  *found is false when the chat has no such (shown) message.  fn gets the chat after.
 */
enum ac_err ac_repo_set_active(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    int64_t message_id, bool *found, ac_chat_fn fn, void *arg);

/* One message of a chat by id (for replaying an answer), in whatever state. */
enum ac_err ac_repo_message_get(struct ac_repo *r, struct ac_str chat_id, int64_t id, ac_message_fn fn,
    void *arg);

#endif
