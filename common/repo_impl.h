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

/* Steps a statement whose columns are CHAT_COLUMNS, handing each chat to fn; AC_ENOTFOUND if none. */
enum ac_err ac_repo_each_chat(struct ac_stmt *s, ac_chat_fn fn, void *arg);

/* Steps a statement whose columns are AC_MSG_COLUMNS, handing each message to fn. */
enum ac_err ac_repo_each_message(struct ac_stmt *s, ac_message_fn fn, void *arg);

/* AC_OK when the chat is the user's, AC_ENOTFOUND otherwise. */
enum ac_err ac_repo_chat_owned(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id);

#define AC_MSG_COLUMNS \
	"id, chat_id, role, content, created_at, incomplete, model, prompt_tokens, completion_tokens"
#define AC_CHAT_COLUMNS "id, user_id, title, created_at, updated_at, message_count"

#endif
