/*
 * Sends to the model: the state machine of repo.h (begin, context, finish), idempotency keys, and
 * which reply is shown.  The tree's own moves (the active path) are in repo_tree.c.
 */
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_LEAF,
	S_INSERT,
	S_TOUCH,
	S_INFO,
	S_TAKE,
	S_ACTIVE_CHILD,
	S_LAST_USER,
	S_HISTORY_PATH,
	S_HISTORY_ACTIVE,
	S_FINISH,
	S_IDEM_EXPIRE,
	S_IDEM_GET,
	S_IDEM_INSERT,
	S_IDEM_REPLY,
	S_FINISH_LOCK,
	S_COUNT
};

static const struct ac_sql sql[S_COUNT] = {
	[S_LEAF] = { "SELECT id FROM messages WHERE chat_id = $1 AND active = 1 ORDER BY id DESC LIMIT 1", NULL },
	[S_INSERT] = { "INSERT INTO messages (chat_id, parent_id, role, content, created_at, state, active, "
	    "locked_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id", NULL },
	[S_TOUCH] = { "UPDATE chats SET updated_at = max($2, updated_at + 1), message_count = message_count + $3 "
	    "WHERE id = $1",
	    "UPDATE chats SET updated_at = greatest($2, updated_at + 1), message_count = message_count + $3 "
	    "WHERE id = $1" },
	[S_INFO] = { "SELECT role, state, active, parent_id, locked_until FROM messages WHERE chat_id = $1 AND id = $2",
	    NULL },
	/* A failed reply row, or one whose worker died, answered again in its place. */
	[S_TAKE] = { "UPDATE messages SET state = 2, locked_until = $2, content = '' WHERE id = $1", NULL },
	[S_ACTIVE_CHILD] = { "SELECT id, state, locked_until FROM messages WHERE chat_id = $1 AND parent_id = $2 "
	    "AND active = 1 AND id <> $3", NULL },
	[S_LAST_USER] = { "SELECT id FROM messages WHERE chat_id = $1 AND active = 1 AND role = 'user' "
	    "ORDER BY id DESC LIMIT 1", NULL },
	/* The path up from a message, newest first (a message off the active path). */
	[S_HISTORY_PATH] = { "WITH RECURSIVE up (id, depth) AS (SELECT $2, 0 UNION ALL "
	    "SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL) "
	    "SELECT " AC_MSG_COLUMNS_OF("m") " FROM up JOIN messages m ON m.id = up.id "
	    "WHERE m.chat_id = $1 AND m.state < 2 ORDER BY up.depth",
	    "WITH RECURSIVE up (id, depth) AS (SELECT CAST($2 AS BIGINT), 0 UNION ALL "
	    "SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL) "
	    "SELECT " AC_MSG_COLUMNS_OF("m") " FROM up JOIN messages m ON m.id = up.id "
	    "WHERE m.chat_id = $1 AND m.state < 2 ORDER BY up.depth" },
	/* The same for a message on the active path, from its index: along a path ids grow. */
	[S_HISTORY_ACTIVE] = { "SELECT " AC_MSG_COLUMNS_OF("m") " FROM messages m WHERE m.chat_id = $1 "
	    "AND m.active = 1 AND m.state < 2 AND m.id <= $2 ORDER BY m.id DESC", NULL },
	[S_FINISH] = { "UPDATE messages SET content = $3, state = $4, incomplete = $5, model = $6, "
	    "prompt_tokens = $7, completion_tokens = $8, created_at = $9, locked_until = 0 "
	    "WHERE chat_id = $1 AND id = $2 AND state = 2", NULL },
	[S_IDEM_EXPIRE] = { "DELETE FROM idempotency_keys WHERE created_at < $1", NULL },
	[S_IDEM_GET] = { "SELECT k.chat_id, k.user_message_id, k.reply_message_id, m.content, r.state, "
	    "r.locked_until FROM idempotency_keys k JOIN messages m ON m.id = k.user_message_id "
	    "LEFT JOIN messages r ON r.id = k.reply_message_id WHERE k.user_id = $1 AND k.key = $2", NULL },
	[S_IDEM_INSERT] = { "INSERT INTO idempotency_keys (user_id, key, chat_id, user_message_id, "
	    "reply_message_id, locked_until, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)", NULL },
	/* Finishes in one chat take turns too (two regenerates' replies must not both be shown). */
	[S_FINISH_LOCK] = { "SELECT 1 FROM chats WHERE id = $1", "SELECT 1 FROM chats WHERE id = $1 FOR UPDATE" },
	[S_IDEM_REPLY] = { "UPDATE idempotency_keys SET reply_message_id = $3 WHERE user_id = $1 AND key = $2",
	    NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_SEND, sql, i, out);
}

static bool
str_eq(struct ac_str a, struct ac_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Binds a message id, 0 as NULL. */
static void
bind_id(struct ac_stmt *s, int n, int64_t id)
{
	if (id > 0)
		ac_db_bind_int(s, n, id);
	else
		ac_db_bind_null(s, n);
}

enum ac_err
ac_repo_touch(struct ac_repo *r, struct ac_str chat_id, int64_t now, int64_t added)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_TOUCH, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, now);
	ac_db_bind_int(s, 3, added);
	return ac_repo_run(s, NULL);
}

enum ac_err
ac_repo_insert(struct ac_repo *r, struct ac_str chat_id, const struct ac_row *row, int64_t *id)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_INSERT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	bind_id(s, 2, row->parent_id);
	ac_db_bind_str(s, 3, row->role == AC_ROLE_USER ? AC_STR("user") : AC_STR("assistant"));
	ac_db_bind_str(s, 4, row->content);
	ac_db_bind_int(s, 5, row->created_at);
	ac_db_bind_int(s, 6, row->state);
	ac_db_bind_int(s, 7, row->active);
	ac_db_bind_int(s, 8, row->locked_until);
	err = ac_repo_one_int(s, id);
	return err == AC_ENOTFOUND ? AC_EDB : err;
}

enum ac_err
ac_repo_info(struct ac_repo *r, struct ac_str chat_id, int64_t id, struct ac_info *out)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

	memset(out, 0, sizeof(*out));
	if ((err = stmt(r, S_INFO, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, id);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		struct ac_str role = ac_db_col_str(s, 0);

		out->role = role.len > 0 && role.ptr[0] == 'a' ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		out->state = (int)ac_db_col_int(s, 1);
		out->active = ac_db_col_int(s, 2) != 0;
		out->parent_id = ac_db_col_int(s, 3);
		out->locked_until = ac_db_col_int(s, 4);
	}
	ac_db_done(s);
	if (err != AC_OK)
		return err;
	return row ? AC_OK : AC_ENOTFOUND;
}

/* A reply row in GENERATING whose lock has run out: its worker died, and it counts as failed. */
static bool
abandoned(int state, int64_t locked_until, int64_t now)
{
	return state == AC_STATE_FAILED || (state == AC_STATE_GENERATING && locked_until <= now);
}

static enum ac_err
take(struct ac_repo *r, int64_t id, int64_t lock_until)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_TAKE, &s)) != AC_OK)
		return err;
	ac_db_bind_int(s, 1, id);
	ac_db_bind_int(s, 2, lock_until);
	return ac_repo_run(s, NULL);
}

/* A new reply row under user message parent: on the active path at once, or an alternative. */
static enum ac_err
begin_reply(struct ac_repo *r, struct ac_str chat_id, int64_t parent, bool active, int64_t now,
    int64_t lock_until, int64_t *id)
{
	struct ac_row row = { parent, AC_ROLE_ASSISTANT, AC_STR(""), now, AC_STATE_GENERATING, active, lock_until };

	return ac_repo_insert(r, chat_id, &row, id);
}

/* The active child of parent other than except: *id 0 when there is none. */
static enum ac_err
active_child(struct ac_repo *r, struct ac_str chat_id, int64_t parent, int64_t except, int64_t *id,
    int *state, int64_t *locked_until)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

	*id = 0;
	if ((err = stmt(r, S_ACTIVE_CHILD, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, parent);
	ac_db_bind_int(s, 3, except);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		*id = ac_db_col_int(s, 0);
		if (state != NULL)
			*state = (int)ac_db_col_int(s, 1);
		if (locked_until != NULL)
			*locked_until = ac_db_col_int(s, 2);
	}
	ac_db_done(s);
	return err;
}

/*
 * Answers user message u again: in its failed (or abandoned) shown reply row if it has one, else
 * in a new alternative.
 */
static enum ac_err
answer_again(struct ac_repo *r, struct ac_str chat_id, int64_t u, int64_t now, int64_t lock_until,
    struct ac_send *out)
{
	int64_t child, locked_until = 0;
	int state = 0;
	enum ac_err err;

	out->user_message_id = u;
	if ((err = active_child(r, chat_id, u, 0, &child, &state, &locked_until)) != AC_OK)
		return err;
	if (child > 0 && abandoned(state, locked_until, now)) {
		out->reply_id = child;
		return take(r, child, lock_until);
	}
	return begin_reply(r, chat_id, u, false, now, lock_until, &out->reply_id);
}

/* An earlier send with this key: what to do about it (*found false: none). */
static enum ac_err
idem_lookup(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str key, int64_t now, int64_t lock_until, struct ac_send *out, bool *found)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t reply, locked_until;
	int state;
	bool row, no_reply;

	*found = false;
	if ((err = stmt(r, S_IDEM_EXPIRE, &s)) != AC_OK)
		return err;
	ac_db_bind_int(s, 1, now - AC_IDEMPOTENCY_TTL_US);
	if ((err = ac_repo_run(s, NULL)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_GET, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, key);
	if ((err = ac_db_step(s, &row)) != AC_OK || !row) {
		ac_db_done(s);
		return err;
	}
	*found = true;
	out->user_message_id = ac_db_col_int(s, 1);
	reply = ac_db_col_int(s, 2);
	no_reply = ac_db_col_null(s, 4);	/* a key from before replies had rows of their own */
	state = (int)ac_db_col_int(s, 4);
	locked_until = ac_db_col_int(s, 5);
	if (!str_eq(ac_db_col_str(s, 0), chat_id) || !str_eq(ac_db_col_str(s, 3), content))
		out->state = AC_SEND_MISMATCH;
	else if (!no_reply && state == AC_STATE_STORED)
		out->state = AC_SEND_DONE;
	else if (!no_reply && state == AC_STATE_GENERATING && locked_until > now)
		out->state = AC_SEND_BUSY;
	else
		out->state = AC_SEND_RETRY;
	ac_db_done(s);
	out->reply_id = reply;
	if (out->state != AC_SEND_RETRY)
		return AC_OK;
	if (!no_reply && abandoned(state, locked_until, now))
		return take(r, reply, lock_until);
	/* Incomplete (or none): what came stays, and the answer is an alternative. */
	if ((err = begin_reply(r, chat_id, out->user_message_id, false, now, lock_until, &out->reply_id)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_REPLY, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, key);
	ac_db_bind_int(s, 3, out->reply_id);
	return ac_repo_run(s, NULL);
}

static enum ac_err
send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until, struct ac_send *out)
{
	int64_t now = ac_now_us(), leaf = 0;
	struct ac_stmt *s;
	enum ac_err err;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_lock(r, chat_id, user_id)) != AC_OK)
		goto out;
	if (idem_key.ptr != NULL) {
		err = idem_lookup(r, chat_id, user_id, content, idem_key, now, lock_until, out, &found);
		if (err != AC_OK || found)
			goto out;
	}
	out->state = AC_SEND_NEW;
	if ((err = stmt(r, S_LEAF, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	if ((err = ac_repo_one_int(s, &leaf)) == AC_ENOTFOUND)
		err = AC_OK;
	if (err != AC_OK)
		goto out;
	{
		struct ac_row row = { leaf, AC_ROLE_USER, content, now, AC_STATE_STORED, true, 0 };

		if ((err = ac_repo_insert(r, chat_id, &row, &out->user_message_id)) != AC_OK)
			goto out;
	}
	if ((err = begin_reply(r, chat_id, out->user_message_id, true, now, lock_until, &out->reply_id)) != AC_OK)
		goto out;
	if (idem_key.ptr != NULL) {
		if ((err = stmt(r, S_IDEM_INSERT, &s)) != AC_OK)
			goto out;
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_str(s, 2, idem_key);
		ac_db_bind_str(s, 3, chat_id);
		ac_db_bind_int(s, 4, out->user_message_id);
		ac_db_bind_int(s, 5, out->reply_id);
		ac_db_bind_int(s, 6, now);
		if ((err = ac_repo_run(s, NULL)) != AC_OK)
			goto out;
	}
	err = ac_repo_touch(r, chat_id, now, 1);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until, struct ac_send *out)
{
	enum ac_err err = send_begin(r, chat_id, user_id, content, idem_key, lock_until, out);

	/* Another host stored the same key between our lookup and our insert: look again. */
	if (err == AC_ECONFLICT && idem_key.ptr != NULL)
		err = send_begin(r, chat_id, user_id, content, idem_key, lock_until, out);
	return err;
}

enum ac_err
ac_repo_regenerate_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, int64_t lock_until,
    struct ac_send *out)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t u = 0;

	memset(out, 0, sizeof(*out));
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_lock(r, chat_id, user_id)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_LAST_USER, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	err = ac_repo_one_int(s, &u);
	if (err == AC_ENOTFOUND) {
		out->state = AC_SEND_NO_MESSAGE;
		err = AC_OK;
		goto out;
	}
	if (err != AC_OK)
		goto out;
	out->state = AC_SEND_RETRY;
	err = answer_again(r, chat_id, u, ac_now_us(), lock_until, out);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_edit_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, int64_t message_id,
    struct ac_str content, int64_t lock_until, struct ac_send *out)
{
	int64_t now = ac_now_us();
	struct ac_info m;
	enum ac_err err;

	memset(out, 0, sizeof(*out));
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_lock(r, chat_id, user_id)) != AC_OK)
		goto out;
	err = ac_repo_info(r, chat_id, message_id, &m);
	if (err == AC_ENOTFOUND || (err == AC_OK && m.state >= AC_STATE_GENERATING)) {
		out->state = AC_SEND_NO_MESSAGE;
		err = AC_OK;
		goto out;
	}
	if (err != AC_OK)
		goto out;
	if (m.role != AC_ROLE_USER) {
		out->state = AC_SEND_NOT_USER;
		goto out;
	}
	out->state = AC_SEND_NEW;
	/* The new message's path becomes the active one: the old branch is left as it is. */
	if ((err = ac_repo_path_clear(r, chat_id)) != AC_OK)
		goto out;
	if (m.parent_id > 0 && (err = ac_repo_path_up(r, chat_id, m.parent_id)) != AC_OK)
		goto out;
	{
		struct ac_row row = { m.parent_id, AC_ROLE_USER, content, now, AC_STATE_STORED, true, 0 };

		if ((err = ac_repo_insert(r, chat_id, &row, &out->user_message_id)) != AC_OK)
			goto out;
	}
	if ((err = begin_reply(r, chat_id, out->user_message_id, true, now, lock_until, &out->reply_id)) != AC_OK)
		goto out;
	err = ac_repo_recount(r, chat_id, now);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_history(struct ac_repo *r, struct ac_str chat_id, int64_t user_message_id, ac_message_fn fn,
    void *arg)
{
	struct ac_stmt *s;
	struct ac_info m;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_READ)) != AC_OK)
		return err;
	if ((err = ac_repo_info(r, chat_id, user_message_id, &m)) != AC_OK)
		goto out;
	if ((err = stmt(r, m.active ? S_HISTORY_ACTIVE : S_HISTORY_PATH, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, user_message_id);
	err = ac_repo_each_message(s, fn, arg);
	if (err == AC_ETOOBIG)
		err = AC_OK;
out:
	return ac_repo_end(r, err);
}

/*
 * A complete alternative reply n (to user message u) is shown if the reply it would replace is
 * still the end of the active path: u is on the path, and its shown child (if any) has nothing
 * after it.
 */
static enum ac_err
maybe_show(struct ac_repo *r, struct ac_str chat_id, int64_t n, int64_t u, int64_t now)
{
	struct ac_info parent;
	int64_t c = 0;
	bool has_children = false;
	enum ac_err err;

	if ((err = ac_repo_info(r, chat_id, u, &parent)) != AC_OK)
		return err;
	if (!parent.active)
		return AC_OK;
	if ((err = active_child(r, chat_id, u, n, &c, NULL, NULL)) != AC_OK)
		return err;
	if (c > 0 && (err = ac_repo_has_children(r, chat_id, c, &has_children)) != AC_OK)
		return err;
	if (has_children)
		return AC_OK;
	if (c > 0 && (err = ac_repo_set_row_active(r, c, false)) != AC_OK)
		return err;
	if ((err = ac_repo_set_row_active(r, n, true)) != AC_OK)
		return err;
	return ac_repo_recount(r, chat_id, now);
}

static int
state_of(enum ac_reply_outcome o)
{
	return o == AC_REPLY_COMPLETE ? AC_STATE_STORED : o == AC_REPLY_INCOMPLETE ? AC_STATE_INCOMPLETE :
	    AC_STATE_FAILED;
}

/* The reply into row id (which must be GENERATING); *changed 0 when it was not. */
static enum ac_err
finish_row(struct ac_repo *r, struct ac_str chat_id, int64_t id, const struct ac_reply *reply, int64_t now,
    int64_t *changed)
{
	int state = state_of(reply->outcome);
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_FINISH, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, id);
	ac_db_bind_str(s, 3, reply->content);
	ac_db_bind_int(s, 4, state);
	ac_db_bind_int(s, 5, state == AC_STATE_INCOMPLETE);
	ac_db_bind_str(s, 6, reply->model);
	ac_db_bind_int(s, 7, reply->prompt_tokens);
	ac_db_bind_int(s, 8, reply->completion_tokens);
	ac_db_bind_int(s, 9, now);
	return ac_repo_run(s, changed);
}

enum ac_err
ac_repo_send_finish(struct ac_repo *r, struct ac_str chat_id, const struct ac_send *send,
    const struct ac_reply *reply, int64_t *id, int64_t *created_at)
{
	int64_t now = ac_now_us(), changed = 0, one;
	struct ac_info row;
	struct ac_stmt *s;
	enum ac_err err;

	*id = send->reply_id;
	*created_at = now;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_FINISH_LOCK, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	if ((err = ac_repo_one_int(s, &one)) != AC_OK)
		goto out;	/* AC_ENOTFOUND: the chat was deleted meanwhile */
	if ((err = ac_repo_info(r, chat_id, send->reply_id, &row)) != AC_OK)
		goto out;	/* AC_ENOTFOUND: the chat was deleted meanwhile */
	if ((err = finish_row(r, chat_id, send->reply_id, reply, now, &changed)) != AC_OK)
		goto out;
	if (changed == 0) {
		/* A repeat took the row over after our lock ran out: ours becomes an alternative. */
		if (reply->outcome == AC_REPLY_FAILED)
			goto out;
		if ((err = begin_reply(r, chat_id, row.parent_id, false, now, 0, id)) != AC_OK)
			goto out;
		if ((err = finish_row(r, chat_id, *id, reply, now, &changed)) != AC_OK)
			goto out;
	} else if (row.active) {
		err = ac_repo_touch(r, chat_id, now, reply->outcome == AC_REPLY_FAILED ? 0 : 1);
		goto out;
	} else if (reply->outcome == AC_REPLY_COMPLETE) {
		if ((err = maybe_show(r, chat_id, send->reply_id, row.parent_id, now)) != AC_OK)
			goto out;
	}
	err = ac_repo_touch(r, chat_id, now, 0);
out:
	return ac_repo_end(r, err);
}
