/*
 * Export and import (GET /chats/{id}/export, GET /export, POST /import): reading a user's chats one
 * at a time and their messages a page at a time (so that an export of any size is streamed in
 * bounded memory on both engines), and writing chats as they were, in the caller's transaction.
 */
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_NEXT_CHAT,
	S_MESSAGES,
	S_MESSAGES_ACTIVE,
	S_INSERT_CHAT,
	S_INSERT_MESSAGE,
	S_COUNT_MESSAGES,
	S_COUNT
};

/* A message's columns for an export, of the table m (its parent p): the parent named is the nearest
 * shown message above it (a failed or unfinished reply is skipped, and so never named). */
#define EXPORT_COLUMNS "m.id, CASE WHEN p.id IS NULL OR p.state < 2 THEN m.parent_id ELSE p.parent_id END, " \
	"m.role, m.content, m.created_at, m.model, m.state, m.active"

static const struct ac_sql sql[S_COUNT] = {
	/* The user's chats in (created_at, id) order, one after the cursor. */
	[S_NEXT_CHAT] = { "SELECT " AC_CHAT_COLUMNS " FROM chats WHERE user_id = $1 AND (created_at > $2 OR "
	    "(created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT 1", NULL },
	[S_MESSAGES] = { "SELECT " EXPORT_COLUMNS " FROM messages m LEFT JOIN messages p ON p.id = m.parent_id "
	    "WHERE m.chat_id = $1 AND m.state < 2 AND m.id > $2 ORDER BY m.id LIMIT $3", NULL },
	[S_MESSAGES_ACTIVE] = { "SELECT " EXPORT_COLUMNS " FROM messages m LEFT JOIN messages p ON p.id = m.parent_id "
	    "WHERE m.chat_id = $1 AND m.active = 1 AND m.state < 2 AND m.id > $2 ORDER BY m.id LIMIT $3", NULL },
	[S_INSERT_CHAT] = { "INSERT INTO chats (id, user_id, title, created_at, updated_at, system_prompt, model, "
	    "pinned, archived) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", NULL },
	[S_INSERT_MESSAGE] = { "INSERT INTO messages (chat_id, parent_id, role, content, created_at, model, state, "
	    "incomplete, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id", NULL },
	[S_COUNT_MESSAGES] = { "UPDATE chats SET message_count = (SELECT count(*) FROM messages WHERE chat_id = $1 "
	    "AND active = 1 AND state < 2) WHERE id = $1", NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_EXPORT, sql, i, out);
}

enum ac_err
ac_repo_export_next_chat(struct ac_repo *r, struct ac_str user_id, int64_t after_created, struct ac_str after_id,
    ac_chat_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_NEXT_CHAT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_int(s, 2, after_created);
	ac_db_bind_str(s, 3, after_id.ptr != NULL ? after_id : AC_STR(""));
	return ac_repo_each_chat(s, fn, arg);
}

enum ac_err
ac_repo_export_messages(struct ac_repo *r, struct ac_str chat_id, int64_t after_id, int64_t limit,
    bool active_only, int64_t *rows, ac_export_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err, ferr = AC_OK;
	bool row;

	*rows = 0;
	if ((err = stmt(r, active_only ? S_MESSAGES_ACTIVE : S_MESSAGES, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, after_id);
	ac_db_bind_int(s, 3, limit);
	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_export_message m;
		struct ac_str role = ac_db_col_str(s, 2);

		m.id = ac_db_col_int(s, 0);
		m.parent_id = ac_db_col_null(s, 1) ? 0 : ac_db_col_int(s, 1);
		m.role = role.len > 0 && role.ptr[0] == 'a' ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		m.content = ac_db_col_str(s, 3);
		if (m.content.ptr == NULL)
			m.content = AC_STR("");
		m.created_at = ac_db_col_int(s, 4);
		m.model = ac_db_col_str(s, 5);
		m.incomplete = ac_db_col_int(s, 6) == AC_STATE_INCOMPLETE;
		m.active = ac_db_col_int(s, 7) != 0;
		(*rows)++;
		if ((ferr = fn(arg, &m)) != AC_OK)
			break;
	}
	ac_db_done(s);
	return err != AC_OK ? err : ferr;
}

enum ac_err
ac_repo_import_chat(struct ac_repo *r, struct ac_str user_id, const struct ac_chat *chat,
    char id[37])
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = stmt(r, S_INSERT_CHAT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
	ac_db_bind_str(s, 2, user_id);
	ac_db_bind_str(s, 3, chat->title);
	ac_db_bind_int(s, 4, chat->created_at);
	ac_db_bind_int(s, 5, chat->updated_at);
	ac_db_bind_str(s, 6, chat->system_prompt);
	ac_db_bind_str(s, 7, chat->model);
	ac_db_bind_int(s, 8, chat->pinned);
	ac_db_bind_int(s, 9, chat->archived);
	return ac_repo_run(s, NULL);
}

enum ac_err
ac_repo_import_message(struct ac_repo *r, struct ac_str chat_id, const struct ac_export_message *m, int64_t *id)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_INSERT_MESSAGE, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	if (m->parent_id > 0)
		ac_db_bind_int(s, 2, m->parent_id);
	else
		ac_db_bind_null(s, 2);
	ac_db_bind_str(s, 3, m->role == AC_ROLE_ASSISTANT ? AC_STR("assistant") : AC_STR("user"));
	ac_db_bind_str(s, 4, m->content);
	ac_db_bind_int(s, 5, m->created_at);
	ac_db_bind_str(s, 6, m->role == AC_ROLE_ASSISTANT ? m->model : (struct ac_str){ NULL, 0 });
	ac_db_bind_int(s, 7, m->incomplete ? AC_STATE_INCOMPLETE : AC_STATE_STORED);
	ac_db_bind_int(s, 8, m->incomplete);
	ac_db_bind_int(s, 9, m->active);
	err = ac_repo_one_int(s, id);
	return err == AC_ENOTFOUND ? AC_EDB : err;
}

enum ac_err
ac_repo_import_chat_done(struct ac_repo *r, struct ac_str chat_id)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_COUNT_MESSAGES, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	return ac_repo_run(s, NULL);
}

enum ac_err
ac_repo_import_begin(struct ac_repo *r)
{
	return ac_db_begin(r->db, AC_TXN_WRITE);
}

enum ac_err
ac_repo_import_end(struct ac_repo *r, enum ac_err err)
{
	return ac_repo_end(r, err);
}
