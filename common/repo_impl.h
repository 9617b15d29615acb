/*
 * Inside the repository (private to common/repo*.c): the connection, the statement numbering, and
 * the helpers every subject's file shares.  Each subject (chats, sends, accounts, limits, ...) keeps
 * its statements beside its logic, numbered from its own base.
 */
#ifndef AC_REPO_IMPL_H
#define AC_REPO_IMPL_H

#include "db.h"
#include "repo.h"

struct ac_repo {
	struct ac_db *db;
	int64_t *siblings;	/* the sibling ids of the message a page hands on */
	size_t siblings_cap;
};

/* Where each subject's statement numbers start (each has room for 32). */
enum {
	AC_SQL_CHATS = 0,
	AC_SQL_SEND = 32,
	AC_SQL_TREE = 64,
	AC_SQL_ACCOUNTS = 96,
	AC_SQL_LIMITS = 128,
	AC_SQL_KEEP = 160,
	AC_SQL_OPS = 192,
	AC_SQL_SEARCH = 224,	/* repo_search.c (room for 16) */
	AC_SQL_EXPORT = 240,	/* repo_export.c (room for 16) */
	AC_SQL_KEYS = 256,	/* repo_keys.c */
};

/* Statement base + i of table (an array of struct ac_sql), ready to bind. */
#define REPO_STMT(r, base, table, i, out) ac_db_stmt((r)->db, (base) + (i), &(table)[(i)], (out))

/* Runs a bound statement that yields no rows (or ignores them); *changes may be NULL. */
enum ac_err ac_repo_run(struct ac_stmt *s, int64_t *changes);

/* The first column of the first row as an integer; AC_ENOTFOUND when there is no row. */
enum ac_err ac_repo_one_int(struct ac_stmt *s, int64_t *out);

/* Ends a transaction: commits when err is AC_OK or AC_ENOTFOUND (nothing to undo), else rolls back.
 * Returns err, or the commit's failure. */
enum ac_err ac_repo_end(struct ac_repo *r, enum ac_err err);

/* One write of statement base + i of table, its parameters the strings a and b (b.ptr NULL: a alone),
 * in a transaction of its own; AC_ENOTFOUND when it changed no row. */
enum ac_err ac_repo_write_one(struct ac_repo *r, int base, const struct ac_sql *table, int i, struct ac_str a,
    struct ac_str b);

/* Steps a statement whose columns are CHAT_COLUMNS, handing each chat to fn; AC_ENOTFOUND if none. */
enum ac_err ac_repo_each_chat(struct ac_stmt *s, ac_chat_fn fn, void *arg);

/* Steps a statement whose columns are AC_MSG_COLUMNS, handing each message to fn. */
enum ac_err ac_repo_each_message(struct ac_stmt *s, ac_message_fn fn, void *arg);

/* AC_OK when the chat is the user's, AC_ENOTFOUND otherwise. */
enum ac_err ac_repo_chat_owned(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id);
/* The same inside a write transaction, for its writers of the chat to take turns (PostgreSQL locks
 * the chat's row till the transaction ends). */
enum ac_err ac_repo_chat_lock(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id);

/* A message row's columns, of the table (or alias) t, in the order ac_repo_each_message reads. */
#define AC_MSG_COLUMNS_OF(t) t ".id, " t ".chat_id, " t ".role, " t ".content, " t ".created_at, " t ".state, " \
	t ".model, " t ".prompt_tokens, " t ".completion_tokens, " t ".parent_id"
#define AC_MSG_COLUMNS AC_MSG_COLUMNS_OF("messages")
#define AC_MSG_NCOLUMNS 10

/* A message row's state (sql/sqlite/003_tree.sql): 2 and 3 are not shown. */
enum {
	AC_STATE_STORED = 0,		/* a user message, or a complete reply */
	AC_STATE_INCOMPLETE = 1,
	AC_STATE_GENERATING = 2,
	AC_STATE_FAILED = 3,
};

/* A row to insert. */
struct ac_row {
	int64_t parent_id;	/* 0: none */
	enum ac_role role;
	struct ac_str content;
	int64_t created_at;
	int state;
	bool active;
	int64_t locked_until;
};

/* What the send and tree logic need to know of a row. */
struct ac_info {
	enum ac_role role;
	int state;
	bool active;
	int64_t parent_id;
	int64_t locked_until;
};

/* repo_send.c */
enum ac_err ac_repo_insert(struct ac_repo *r, struct ac_str chat_id, const struct ac_row *row, int64_t *id);
/* AC_ENOTFOUND when the chat has no message id. */
enum ac_err ac_repo_info(struct ac_repo *r, struct ac_str chat_id, int64_t id, struct ac_info *out);
/* Moves the chat's updated_at to now (or just past its last) and adds to its message_count. */
enum ac_err ac_repo_touch(struct ac_repo *r, struct ac_str chat_id, int64_t now, int64_t added);

/* repo_tree.c: moving the active path (inside a write transaction). */
enum ac_err ac_repo_path_clear(struct ac_repo *r, struct ac_str chat_id);
/* Puts id and every message above it on the active path. */
enum ac_err ac_repo_path_up(struct ac_repo *r, struct ac_str chat_id, int64_t id);
enum ac_err ac_repo_set_row_active(struct ac_repo *r, int64_t id, bool active);
enum ac_err ac_repo_has_children(struct ac_repo *r, struct ac_str chat_id, int64_t id, bool *out);
/* Counts the active path's shown messages into message_count, and moves updated_at. */
enum ac_err ac_repo_recount(struct ac_repo *r, struct ac_str chat_id, int64_t now);
#define AC_CHAT_COLUMNS "id, user_id, title, created_at, updated_at, message_count, system_prompt, model, pinned, " \
	"archived"

#endif
