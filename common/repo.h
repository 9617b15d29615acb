/*
 * The repository: every read and write of chats and messages.  Nothing here names the storage
 * engine, so another backend (PostgreSQL) can sit behind the same functions.
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
 * Brings the database at url-path to the current schema (creating it if needed): run once at start,
 * before connections are opened.  Safe when several processes start at once.
 */
enum ac_err ac_repo_migrate(const char *path, int busy_timeout_ms, char *msg, size_t msg_size);

enum ac_err ac_repo_open(const char *path, int busy_timeout_ms, struct ac_repo **out);
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

#endif
