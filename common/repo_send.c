/* Sends to the model: the user's message, the context, the reply, idempotency keys. */
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_CHAT_TOUCH,
	S_MSG_INSERT,
	S_MSG_DELETE,
	S_REPLY_AFTER,
	S_LAST_USER,
	S_HISTORY,
	S_IDEM_EXPIRE,
	S_IDEM_GET,
	S_IDEM_INSERT,
	S_IDEM_LOCK,
	S_IDEM_DONE,
	S_COUNT
};

static const struct ac_sql sql[S_COUNT] = {
	[S_CHAT_TOUCH] = { "UPDATE chats SET updated_at = max($2, updated_at + 1) WHERE id = $1",
	    "UPDATE chats SET updated_at = greatest($2, updated_at + 1) WHERE id = $1" },
	[S_MSG_INSERT] = { "INSERT INTO messages (chat_id, role, content, created_at, model, prompt_tokens, "
	    "completion_tokens, incomplete) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id", NULL },
	[S_MSG_DELETE] = { "DELETE FROM messages WHERE id = $2 AND chat_id = $1", NULL },
	[S_REPLY_AFTER] = { "SELECT id FROM messages WHERE chat_id = $1 AND id > $2 AND role = 'assistant' "
	    "ORDER BY id LIMIT 1", NULL },
	[S_LAST_USER] = { "SELECT id FROM messages WHERE chat_id = $1 AND role = 'user' ORDER BY id DESC LIMIT 1",
	    NULL },
	[S_HISTORY] = { "SELECT " AC_MSG_COLUMNS " FROM messages WHERE chat_id = $1 AND id <= $2 ORDER BY id DESC",
	    NULL },
	[S_IDEM_EXPIRE] = { "DELETE FROM idempotency_keys WHERE created_at < $1", NULL },
	[S_IDEM_GET] = { "SELECT k.chat_id, k.user_message_id, k.reply_message_id, k.locked_until, m.content "
	    "FROM idempotency_keys k JOIN messages m ON m.id = k.user_message_id "
	    "WHERE k.user_id = $1 AND k.key = $2", NULL },
	[S_IDEM_INSERT] = { "INSERT INTO idempotency_keys (user_id, key, chat_id, user_message_id, locked_until, "
	    "created_at) VALUES ($1, $2, $3, $4, $5, $6)", NULL },
	[S_IDEM_LOCK] = { "UPDATE idempotency_keys SET locked_until = $3 WHERE user_id = $1 AND key = $2", NULL },
	[S_IDEM_DONE] = { "UPDATE idempotency_keys SET reply_message_id = $3, locked_until = 0 "
	    "WHERE user_id = $1 AND key = $2", NULL },
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

static enum ac_err
insert_message(struct ac_repo *r, struct ac_str chat_id, enum ac_role role, struct ac_str content,
    const struct ac_reply *reply, int64_t now, int64_t *id)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_MSG_INSERT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, role == AC_ROLE_USER ? AC_STR("user") : AC_STR("assistant"));
	ac_db_bind_str(s, 3, content);
	ac_db_bind_int(s, 4, now);
	if (reply != NULL) {
		ac_db_bind_str(s, 5, reply->model);
		ac_db_bind_int(s, 6, reply->prompt_tokens);
		ac_db_bind_int(s, 7, reply->completion_tokens);
		ac_db_bind_int(s, 8, reply->incomplete);
	} else {
		ac_db_bind_null(s, 5);
		ac_db_bind_null(s, 6);
		ac_db_bind_null(s, 7);
		ac_db_bind_int(s, 8, 0);
	}
	if ((err = ac_repo_one_int(s, id)) != AC_OK)
		return err == AC_ENOTFOUND ? AC_EDB : err;
	if ((err = stmt(r, S_CHAT_TOUCH, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, now);
	return ac_repo_run(s, NULL);
}

/* The reply already given to a user message (to be replaced by a new one), or 0. */
static enum ac_err
reply_after(struct ac_repo *r, struct ac_str chat_id, int64_t user_message_id, int64_t *out)
{
	struct ac_stmt *s;
	enum ac_err err;

	*out = 0;
	if ((err = stmt(r, S_REPLY_AFTER, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, user_message_id);
	err = ac_repo_one_int(s, out);
	return err == AC_ENOTFOUND ? AC_OK : err;
}

/* An earlier send with this key: what to do about it. */
static enum ac_err
idem_lookup(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str key, int64_t now, int64_t lock_until, struct ac_send *out, bool *found)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

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
	out->reply_message_id = ac_db_col_int(s, 2);
	if (!str_eq(ac_db_col_str(s, 0), chat_id) || !str_eq(ac_db_col_str(s, 4), content))
		out->state = AC_SEND_MISMATCH;
	else if (out->reply_message_id > 0)
		out->state = AC_SEND_DONE;
	else if (ac_db_col_int(s, 3) > now)
		out->state = AC_SEND_BUSY;
	else
		out->state = AC_SEND_RETRY;
	ac_db_done(s);
	if (out->state != AC_SEND_RETRY)
		return AC_OK;
	if ((err = reply_after(r, chat_id, out->user_message_id, &out->replace_id)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_LOCK, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, key);
	ac_db_bind_int(s, 3, lock_until);
	return ac_repo_run(s, NULL);
}

static enum ac_err send_begin_once(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str content, struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out);

/*
 * Two hosts (or processes, on PostgreSQL's READ COMMITTED) that start a send with the same key at
 * once both find no key; the second one's insert then meets the first's (AC_ECONFLICT) and its whole
 * transaction is undone.  Once more, it finds the first send's key and answers as a repeat.
 */
enum ac_err
ac_repo_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out)
{
	enum ac_err err = send_begin_once(r, chat_id, user_id, content, idem_key, lock_until_us, out);

	if (err == AC_ECONFLICT && idem_key.ptr != NULL)
		err = send_begin_once(r, chat_id, user_id, content, idem_key, lock_until_us, out);
	return err;
}

static enum ac_err
send_begin_once(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out)
{
	int64_t now = ac_now_us();
	struct ac_stmt *s;
	enum ac_err err;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_owned(r, chat_id, user_id)) != AC_OK)
		goto out;
	if (idem_key.ptr != NULL) {
		err = idem_lookup(r, chat_id, user_id, content, idem_key, now, lock_until_us, out, &found);
		if (err != AC_OK || found)
			goto out;
	}
	out->state = AC_SEND_NEW;
	if ((err = insert_message(r, chat_id, AC_ROLE_USER, content, NULL, now, &out->user_message_id)) != AC_OK)
		goto out;
	if (idem_key.ptr != NULL) {
		if ((err = stmt(r, S_IDEM_INSERT, &s)) != AC_OK)
			goto out;
		ac_db_bind_str(s, 1, user_id);
		ac_db_bind_str(s, 2, idem_key);
		ac_db_bind_str(s, 3, chat_id);
		ac_db_bind_int(s, 4, out->user_message_id);
		ac_db_bind_int(s, 5, lock_until_us);
		ac_db_bind_int(s, 6, now);
		err = ac_repo_run(s, NULL);
	}
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_regenerate_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_send *out)
{
	struct ac_stmt *s;
	enum ac_err err;

	memset(out, 0, sizeof(*out));
	out->state = AC_SEND_RETRY;
	if ((err = ac_db_begin(r->db, AC_TXN_READ)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_owned(r, chat_id, user_id)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_LAST_USER, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	err = ac_repo_one_int(s, &out->user_message_id);
	if (err == AC_ENOTFOUND) {
		out->user_message_id = 0;
		err = AC_OK;
		goto out;
	}
	if (err == AC_OK)
		err = reply_after(r, chat_id, out->user_message_id, &out->replace_id);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_history(struct ac_repo *r, struct ac_str chat_id, int64_t upto, ac_message_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_READ)) != AC_OK)
		return err;
	if ((err = stmt(r, S_HISTORY, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, upto);
	err = ac_repo_each_message(s, fn, arg);
	if (err == AC_ETOOBIG)
		err = AC_OK;
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_reply_add(struct ac_repo *r, struct ac_str chat_id, const struct ac_reply *reply, int64_t *id,
    int64_t *created_at)
{
	int64_t now = ac_now_us();
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if (reply->replace_id > 0) {
		if ((err = stmt(r, S_MSG_DELETE, &s)) != AC_OK)
			goto out;
		ac_db_bind_str(s, 1, chat_id);
		ac_db_bind_int(s, 2, reply->replace_id);
		if ((err = ac_repo_run(s, NULL)) != AC_OK)
			goto out;
	}
	err = insert_message(r, chat_id, AC_ROLE_ASSISTANT, reply->content, reply, now, id);
	if (err != AC_OK)
		goto out;
	*created_at = now;
	if (reply->idem_key.ptr != NULL && !reply->incomplete) {
		if ((err = stmt(r, S_IDEM_DONE, &s)) != AC_OK)
			goto out;
		ac_db_bind_str(s, 1, reply->user_id);
		ac_db_bind_str(s, 2, reply->idem_key);
		ac_db_bind_int(s, 3, *id);
		err = ac_repo_run(s, NULL);
	}
out:
	return ac_repo_end(r, err == AC_ENOTFOUND ? AC_EDB : err);
}

enum ac_err
ac_repo_send_unlock(struct ac_repo *r, struct ac_str user_id, struct ac_str idem_key)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_LOCK, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, idem_key);
	ac_db_bind_int(s, 3, 0);
	err = ac_repo_run(s, NULL);
out:
	return ac_repo_end(r, err);
}
