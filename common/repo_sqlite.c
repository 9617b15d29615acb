/* The repository on SQLite: one connection per struct ac_repo, statements prepared once and reused. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "migrations.h"
#include "repo.h"
#include "util.h"

enum stmt_id {
	S_BEGIN,
	S_BEGIN_WRITE,
	S_COMMIT,
	S_ROLLBACK,
	S_PING,
	S_CHAT_INSERT,
	S_CHAT_GET,
	S_CHAT_COUNT,
	S_CHAT_LIST,
	S_CHAT_RENAME,
	S_CHAT_DELETE,
	S_CHAT_OWNED,
	S_MSG_AFTER,
	S_MSG_BEFORE,
	S_CHAT_TOUCH,
	S_MSG_INSERT,
	S_MSG_DELETE,
	S_MSG_GET,
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

#define CHAT_COLUMNS "id, user_id, title, created_at, updated_at, message_count"
#define MSG_COLUMNS \
	"id, chat_id, role, content, created_at, incomplete, model, prompt_tokens, completion_tokens"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_BEGIN_WRITE] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_PING] = "SELECT count(*) FROM (SELECT 1 FROM chats LIMIT 1)",
	[S_CHAT_INSERT] = "INSERT INTO chats (id, user_id, title, created_at, updated_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?4) RETURNING " CHAT_COLUMNS,
	[S_CHAT_GET] = "SELECT " CHAT_COLUMNS " FROM chats WHERE id = ?1 AND user_id = ?2",
	[S_CHAT_COUNT] = "SELECT count(*) FROM chats WHERE user_id = ?1",
	[S_CHAT_LIST] = "SELECT " CHAT_COLUMNS " FROM chats WHERE user_id = ?1 "
	    "ORDER BY updated_at DESC, id DESC LIMIT ?2 OFFSET ?3",
	[S_CHAT_RENAME] = "UPDATE chats SET title = ?3, updated_at = max(?4, updated_at + 1) "
	    "WHERE id = ?1 AND user_id = ?2 RETURNING " CHAT_COLUMNS,
	[S_CHAT_DELETE] = "DELETE FROM chats WHERE id = ?1 AND user_id = ?2",
	[S_CHAT_OWNED] = "SELECT 1 FROM chats WHERE id = ?1 AND user_id = ?2",
	/*
	 * A page in one statement (one snapshot): the rows, only when the chat is the user's, each with
	 * whether a message lies past the page (both subqueries are run once, not per row).
	 */
	[S_MSG_AFTER] = "SELECT " MSG_COLUMNS ", (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = ?1 "
	    "AND id > ?3 ORDER BY id LIMIT 1 OFFSET ?4)) FROM messages WHERE chat_id = ?1 AND id > ?3 "
	    "AND EXISTS (SELECT 1 FROM chats WHERE id = ?1 AND user_id = ?2) ORDER BY id LIMIT ?4",
	[S_MSG_BEFORE] = "SELECT *, (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = ?1 AND id < ?3 "
	    "ORDER BY id DESC LIMIT 1 OFFSET ?4)) FROM (SELECT " MSG_COLUMNS " FROM messages "
	    "WHERE chat_id = ?1 AND id < ?3 ORDER BY id DESC LIMIT ?4) "
	    "WHERE EXISTS (SELECT 1 FROM chats WHERE id = ?1 AND user_id = ?2) ORDER BY id",
	[S_CHAT_TOUCH] = "UPDATE chats SET updated_at = max(?2, updated_at + 1) WHERE id = ?1",
	[S_MSG_INSERT] = "INSERT INTO messages (chat_id, role, content, created_at, model, prompt_tokens, "
	    "completion_tokens, incomplete) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_MSG_DELETE] = "DELETE FROM messages WHERE id = ?2 AND chat_id = ?1",
	[S_MSG_GET] = "SELECT " MSG_COLUMNS " FROM messages WHERE chat_id = ?1 AND id = ?2",
	[S_REPLY_AFTER] = "SELECT id FROM messages WHERE chat_id = ?1 AND id > ?2 AND role = 'assistant' "
	    "ORDER BY id LIMIT 1",
	[S_LAST_USER] = "SELECT id FROM messages WHERE chat_id = ?1 AND role = 'user' ORDER BY id DESC LIMIT 1",
	[S_HISTORY] = "SELECT " MSG_COLUMNS " FROM messages WHERE chat_id = ?1 AND id <= ?2 ORDER BY id DESC",
	[S_IDEM_EXPIRE] = "DELETE FROM idempotency_keys WHERE created_at < ?1",
	[S_IDEM_GET] = "SELECT k.chat_id, k.user_message_id, k.reply_message_id, k.locked_until, m.content "
	    "FROM idempotency_keys k JOIN messages m ON m.id = k.user_message_id "
	    "WHERE k.user_id = ?1 AND k.key = ?2",
	[S_IDEM_INSERT] = "INSERT INTO idempotency_keys (user_id, key, chat_id, user_message_id, locked_until, "
	    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_IDEM_LOCK] = "UPDATE idempotency_keys SET locked_until = ?3 WHERE user_id = ?1 AND key = ?2",
	[S_IDEM_DONE] = "UPDATE idempotency_keys SET reply_message_id = ?3, locked_until = 0 "
	    "WHERE user_id = ?1 AND key = ?2",
};

struct ac_repo {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	char errmsg[256];
	int64_t busy_timeout_us;
	int64_t busy_since;
};

/*
 * Waiting for another writer: short sleeps growing from 50 us to 2 ms.  SQLite's own handler sleeps
 * up to 100 ms a time, which with many concurrent writers turns millisecond transactions into waits
 * of tenths of a second.
 */
static int
on_busy(void *arg, int count)
{
	struct ac_repo *r = arg;
	int64_t now = ac_now_us();

	if (count == 0)
		r->busy_since = now;
	if (now - r->busy_since >= r->busy_timeout_us)
		return 0;
	usleep(count < 6 ? 50u << count : 2000u);
	return 1;
}

static enum ac_err
fail(struct ac_repo *r, int rc)
{
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", r->db != NULL ? sqlite3_errmsg(r->db) :
	    sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return AC_EBUSY;
	case SQLITE_NOMEM:
		return AC_ENOMEM;
	default:
		return AC_EDB;
	}
}

/* The statement, reset with its bindings cleared, prepared on first use. */
static enum ac_err
stmt(struct ac_repo *r, enum stmt_id id, sqlite3_stmt **out)
{
	int rc = SQLITE_OK;

	if (r->stmt[id] == NULL)
		rc = sqlite3_prepare_v3(r->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &r->stmt[id], NULL);
	*out = r->stmt[id];
	return rc == SQLITE_OK ? AC_OK : fail(r, rc);
}

static void
done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int
bind_str(sqlite3_stmt *s, int i, struct ac_str v)
{
	if (v.ptr == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text64(s, i, v.ptr, v.len, SQLITE_STATIC, SQLITE_UTF8);
}

static struct ac_str
col_str(sqlite3_stmt *s, int i)
{
	struct ac_str v;

	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		v.ptr = NULL;
		v.len = 0;
		return v;
	}
	v.ptr = (const char *)sqlite3_column_text(s, i);
	v.len = (size_t)sqlite3_column_bytes(s, i);
	return v;
}

/* Runs a statement without results. */
static enum ac_err
exec(struct ac_repo *r, enum stmt_id id)
{
	sqlite3_stmt *s;
	enum ac_err err = stmt(r, id, &s);
	int rc;

	if (err != AC_OK)
		return err;
	rc = sqlite3_step(s);
	done(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? AC_OK : fail(r, rc);
}

/* Runs a prepared, bound statement without rows; *changes is what it changed (may be NULL). */
static enum ac_err
run(struct ac_repo *r, sqlite3_stmt *s, int *changes)
{
	int rc = sqlite3_step(s);

	done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(r, rc);
	if (changes != NULL)
		*changes = sqlite3_changes(r->db);
	return AC_OK;
}

/* A single integer from a bound statement: AC_ENOTFOUND when it yields no row. */
static enum ac_err
one_int(struct ac_repo *r, sqlite3_stmt *s, int64_t *out)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	done(s);
	if (rc == SQLITE_ROW)
		return AC_OK;
	return rc == SQLITE_DONE ? AC_ENOTFOUND : fail(r, rc);
}

static void
rollback(struct ac_repo *r)
{
	if (!sqlite3_get_autocommit(r->db))
		(void)exec(r, S_ROLLBACK);
}

static enum ac_err
commit(struct ac_repo *r, enum ac_err err)
{
	if (err == AC_OK || err == AC_ENOTFOUND) {
		enum ac_err cerr = exec(r, S_COMMIT);

		if (cerr == AC_OK)
			return err;
		err = cerr;
	}
	rollback(r);
	return err;
}

/* Steps a statement that yields chats, handing each to fn; AC_ENOTFOUND if none. */
static enum ac_err
each_chat(struct ac_repo *r, sqlite3_stmt *s, ac_chat_fn fn, void *arg)
{
	enum ac_err err = AC_ENOTFOUND;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ac_chat c;

		c.id = col_str(s, 0);
		c.user_id = col_str(s, 1);
		c.title = col_str(s, 2);
		c.created_at = sqlite3_column_int64(s, 3);
		c.updated_at = sqlite3_column_int64(s, 4);
		c.message_count = sqlite3_column_int64(s, 5);
		err = fn != NULL ? fn(arg, &c) : AC_OK;
		if (err != AC_OK)
			goto out;
	}
	if (rc != SQLITE_DONE)
		err = fail(r, rc);
out:
	done(s);
	return err;
}

/*
 * Steps a statement that yields messages, handing each to fn.  With more, the statement's tenth
 * column says whether more messages lie past the page: *more is set before the first row is handed
 * on, and *rows counts them.
 */
static enum ac_err
each_message_page(struct ac_repo *r, sqlite3_stmt *s, bool *more, int64_t *rows, ac_message_fn fn,
    void *arg)
{
	enum ac_err err = AC_OK;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ac_message m;
		const unsigned char *role = sqlite3_column_text(s, 2);

		m.id = sqlite3_column_int64(s, 0);
		m.chat_id = col_str(s, 1);
		m.role = role != NULL && role[0] == 'a' ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		m.content = col_str(s, 3);
		if (m.content.ptr == NULL)
			m.content = AC_STR("");
		m.created_at = sqlite3_column_int64(s, 4);
		m.incomplete = sqlite3_column_int(s, 5) != 0;
		m.model = col_str(s, 6);
		m.prompt_tokens = sqlite3_column_int64(s, 7);
		m.completion_tokens = sqlite3_column_int64(s, 8);
		if (more != NULL && (*rows)++ == 0)
			*more = sqlite3_column_int(s, 9) != 0;
		if ((err = fn(arg, &m)) != AC_OK)
			break;
	}
	if (err == AC_OK && rc != SQLITE_DONE)
		err = fail(r, rc);
	done(s);
	return err;
}

static enum ac_err
each_message(struct ac_repo *r, sqlite3_stmt *s, ac_message_fn fn, void *arg)
{
	return each_message_page(r, s, NULL, NULL, fn, arg);
}

static enum ac_err
configure(sqlite3 *db, int busy_timeout_ms)
{
	if (sqlite3_busy_timeout(db, busy_timeout_ms) != SQLITE_OK)
		return AC_EDB;
	/* Foreign keys are per connection (cascade delete needs them); FULL makes every commit durable;
	 * a small page cache each, as there is a connection per thread. */
	if (sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -1024;",
	    NULL, NULL, NULL) != SQLITE_OK)
		return AC_EDB;
	return AC_OK;
}

enum ac_err
ac_repo_migrate(const char *path, int busy_timeout_ms, char *msg, size_t msg_size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	enum ac_err err = AC_EDB;
	int version = 0, newest = 0;
	char *errmsg = NULL;
	const char *step = "open";

	msg[0] = '\0';
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		goto out;
	step = "configure";
	if (configure(db, busy_timeout_ms) != AC_OK)
		goto out;
	/* The common case, and all a CGI request pays: one read finds the schema current. */
	for (size_t i = 0; i < ac_migrations_count; i++) {
		if (ac_migrations[i].version > newest)
			newest = ac_migrations[i].version;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == newest) {
		err = AC_OK;
		goto done;
	}
	sqlite3_finalize(s);
	s = NULL;
	step = "set WAL mode";
	if (sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, &errmsg) != SQLITE_OK)
		goto out;
	step = "lock";
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &errmsg) != SQLITE_OK)
		goto out;
	step = "read the schema version";
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		goto rollback;
	version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	for (size_t i = 0; i < ac_migrations_count; i++) {
		const struct ac_migration *m = &ac_migrations[i];
		char pragma[64];

		if (m->version <= version)
			continue;
		step = m->name;
		if (sqlite3_exec(db, m->sql, NULL, NULL, &errmsg) != SQLITE_OK)
			goto rollback;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", m->version);
		if (sqlite3_exec(db, pragma, NULL, NULL, &errmsg) != SQLITE_OK)
			goto rollback;
	}
	if (version > newest) {
		snprintf(msg, msg_size, "%s: schema version %d is newer than this program's (%d)", path,
		    version, newest);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		err = AC_EINVAL;
		goto done;
	}
	step = "commit";
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &errmsg) != SQLITE_OK)
		goto rollback;
	err = AC_OK;
	goto done;
rollback:
	snprintf(msg, msg_size, "%s: %s: %s", path, step, errmsg != NULL ? errmsg : sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	goto done;
out:
	snprintf(msg, msg_size, "%s: %s: %s", path, step,
	    errmsg != NULL ? errmsg : db != NULL ? sqlite3_errmsg(db) : "out of memory");
done:
	sqlite3_free(errmsg);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return err;
}

enum ac_err
ac_repo_open(const char *path, int busy_timeout_ms, struct ac_repo **out)
{
	struct ac_repo *r = calloc(1, sizeof(*r));
	enum ac_err err;

	*out = NULL;
	if (r == NULL)
		return AC_ENOMEM;
	/* NOMUTEX: a connection belongs to one thread. */
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		err = AC_EDB;
		goto fail;
	}
	err = configure(r->db, busy_timeout_ms);
	if (err != AC_OK)
		goto fail;
	r->busy_timeout_us = (int64_t)busy_timeout_ms * 1000;
	sqlite3_busy_handler(r->db, on_busy, r);
	*out = r;
	return AC_OK;
fail:
	ac_repo_close(r);
	return err;
}

void
ac_repo_close(struct ac_repo *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(r->stmt[i]);
	sqlite3_close(r->db);
	free(r);
}

const char *
ac_repo_errmsg(const struct ac_repo *r)
{
	return r->errmsg[0] != '\0' ? r->errmsg : "unknown error";
}

enum ac_err
ac_repo_ping(struct ac_repo *r)
{
	return exec(r, S_PING);
}

static enum ac_err
locked_chat_create(struct ac_repo *r, struct ac_str user_id, struct ac_str title, ac_chat_fn fn,
    void *arg)
{
	char id[AC_UUID_LEN + 1];
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_INSERT, &s)) != AC_OK)
		return err;
	sqlite3_bind_text(s, 1, id, AC_UUID_LEN, SQLITE_STATIC);
	bind_str(s, 2, user_id);
	bind_str(s, 3, title);
	sqlite3_bind_int64(s, 4, ac_now_us());
	err = each_chat(r, s, fn, arg);
	return err == AC_ENOTFOUND ? AC_EDB : err;
}

enum ac_err
ac_repo_chat_get(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, ac_chat_fn fn,
    void *arg)
{
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_CHAT_GET, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	bind_str(s, 2, user_id);
	return each_chat(r, s, fn, arg);
}

enum ac_err
ac_repo_chat_list(struct ac_repo *r, struct ac_str user_id, int64_t limit, int64_t offset,
    int64_t *total, ac_chat_fn fn, void *arg)
{
	sqlite3_stmt *s;
	enum ac_err err;
	int rc;

	/* One read transaction, so that total and the page agree. */
	if ((err = exec(r, S_BEGIN)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_COUNT, &s)) != AC_OK)
		goto out;
	bind_str(s, 1, user_id);
	rc = sqlite3_step(s);
	*total = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	done(s);
	if (rc != SQLITE_ROW) {
		err = fail(r, rc);
		goto out;
	}
	if ((err = stmt(r, S_CHAT_LIST, &s)) != AC_OK)
		goto out;
	bind_str(s, 1, user_id);
	sqlite3_bind_int64(s, 2, limit);
	sqlite3_bind_int64(s, 3, offset);
	err = each_chat(r, s, fn, arg);
	if (err == AC_ENOTFOUND)
		err = AC_OK;
out:
	return commit(r, err);
}

static enum ac_err
locked_chat_rename(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, ac_chat_fn fn, void *arg)
{
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_CHAT_RENAME, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	bind_str(s, 2, user_id);
	bind_str(s, 3, title);
	sqlite3_bind_int64(s, 4, ac_now_us());
	return each_chat(r, s, fn, arg);
}

static enum ac_err
locked_chat_delete(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	sqlite3_stmt *s;
	enum ac_err err;
	int rc;

	if ((err = stmt(r, S_CHAT_DELETE, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	bind_str(s, 2, user_id);
	rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE)
		return fail(r, rc);
	return sqlite3_changes(r->db) > 0 ? AC_OK : AC_ENOTFOUND;
}

static enum ac_err
owned(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	sqlite3_stmt *s;
	enum ac_err err;
	int rc;

	if ((err = stmt(r, S_CHAT_OWNED, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	bind_str(s, 2, user_id);
	rc = sqlite3_step(s);
	done(s);
	if (rc == SQLITE_ROW)
		return AC_OK;
	return rc == SQLITE_DONE ? AC_ENOTFOUND : fail(r, rc);
}

enum ac_err
ac_repo_message_list(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_page *page, bool *more, ac_message_fn fn, void *arg)
{
	sqlite3_stmt *s;
	enum ac_err err;
	int64_t rows = 0;

	*more = false;
	if ((err = stmt(r, page->backward ? S_MSG_BEFORE : S_MSG_AFTER, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	bind_str(s, 2, user_id);
	sqlite3_bind_int64(s, 3, page->cursor);
	sqlite3_bind_int64(s, 4, page->limit);
	err = each_message_page(r, s, more, &rows, fn, arg);
	if (err != AC_OK || rows > 0)
		return err;
	/* No rows: an empty page of the user's chat, or not the user's chat at all. */
	return owned(r, chat_id, user_id);
}

static enum ac_err
insert_message(struct ac_repo *r, struct ac_str chat_id, enum ac_role role, struct ac_str content,
    const struct ac_reply *reply, int64_t now, int64_t *id)
{
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_MSG_INSERT, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	sqlite3_bind_text(s, 2, role == AC_ROLE_USER ? "user" : "assistant", -1, SQLITE_STATIC);
	bind_str(s, 3, content);
	sqlite3_bind_int64(s, 4, now);
	if (reply != NULL) {
		bind_str(s, 5, reply->model);
		sqlite3_bind_int64(s, 6, reply->prompt_tokens);
		sqlite3_bind_int64(s, 7, reply->completion_tokens);
		sqlite3_bind_int(s, 8, reply->incomplete);
	} else {
		sqlite3_bind_int(s, 8, 0);
	}
	if ((err = run(r, s, NULL)) != AC_OK)
		return err;
	*id = sqlite3_last_insert_rowid(r->db);
	if ((err = stmt(r, S_CHAT_TOUCH, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	sqlite3_bind_int64(s, 2, now);
	return run(r, s, NULL);
}

/* The reply already given to a user message (to be replaced by a new one), or 0. */
static enum ac_err
reply_after(struct ac_repo *r, struct ac_str chat_id, int64_t user_message_id, int64_t *out)
{
	sqlite3_stmt *s;
	enum ac_err err;

	*out = 0;
	if ((err = stmt(r, S_REPLY_AFTER, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	sqlite3_bind_int64(s, 2, user_message_id);
	err = one_int(r, s, out);
	return err == AC_ENOTFOUND ? AC_OK : err;
}

/* An earlier send with this key: what to do about it. */
static enum ac_err
idem_lookup(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str key, int64_t now, int64_t lock_until, struct ac_send *out, bool *found)
{
	sqlite3_stmt *s;
	enum ac_err err;
	struct ac_str stored_chat, stored_content;
	int rc;

	*found = false;
	if ((err = stmt(r, S_IDEM_EXPIRE, &s)) != AC_OK)
		return err;
	sqlite3_bind_int64(s, 1, now - AC_IDEMPOTENCY_TTL_US);
	if ((err = run(r, s, NULL)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_GET, &s)) != AC_OK)
		return err;
	bind_str(s, 1, user_id);
	bind_str(s, 2, key);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		done(s);
		return rc == SQLITE_DONE ? AC_OK : fail(r, rc);
	}
	*found = true;
	stored_chat = col_str(s, 0);
	stored_content = col_str(s, 4);
	out->user_message_id = sqlite3_column_int64(s, 1);
	out->reply_message_id = sqlite3_column_int64(s, 2);
	if (stored_chat.len != chat_id.len || memcmp(stored_chat.ptr, chat_id.ptr, chat_id.len) != 0 ||
	    stored_content.len != content.len ||
	    (content.len > 0 && memcmp(stored_content.ptr, content.ptr, content.len) != 0))
		out->state = AC_SEND_MISMATCH;
	else if (out->reply_message_id > 0)
		out->state = AC_SEND_DONE;
	else if (sqlite3_column_int64(s, 3) > now)
		out->state = AC_SEND_BUSY;
	else
		out->state = AC_SEND_RETRY;
	done(s);
	if (out->state != AC_SEND_RETRY)
		return AC_OK;
	if ((err = reply_after(r, chat_id, out->user_message_id, &out->replace_id)) != AC_OK)
		return err;
	if ((err = stmt(r, S_IDEM_LOCK, &s)) != AC_OK)
		return err;
	bind_str(s, 1, user_id);
	bind_str(s, 2, key);
	sqlite3_bind_int64(s, 3, lock_until);
	return run(r, s, NULL);
}

static enum ac_err
locked_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out)
{
	int64_t now = ac_now_us();
	sqlite3_stmt *s;
	enum ac_err err;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if ((err = exec(r, S_BEGIN_WRITE)) != AC_OK)
		return err;
	if ((err = owned(r, chat_id, user_id)) != AC_OK)
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
		bind_str(s, 1, user_id);
		bind_str(s, 2, idem_key);
		bind_str(s, 3, chat_id);
		sqlite3_bind_int64(s, 4, out->user_message_id);
		sqlite3_bind_int64(s, 5, lock_until_us);
		sqlite3_bind_int64(s, 6, now);
		err = run(r, s, NULL);
	}
out:
	return commit(r, err);
}

enum ac_err
ac_repo_regenerate_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_send *out)
{
	sqlite3_stmt *s;
	enum ac_err err;

	memset(out, 0, sizeof(*out));
	out->state = AC_SEND_RETRY;
	if ((err = exec(r, S_BEGIN)) != AC_OK)
		return err;
	if ((err = owned(r, chat_id, user_id)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_LAST_USER, &s)) != AC_OK)
		goto out;
	bind_str(s, 1, chat_id);
	err = one_int(r, s, &out->user_message_id);
	if (err == AC_ENOTFOUND) {
		out->user_message_id = 0;
		err = AC_OK;
		goto out;
	}
	if (err == AC_OK)
		err = reply_after(r, chat_id, out->user_message_id, &out->replace_id);
out:
	return commit(r, err);
}

enum ac_err
ac_repo_history(struct ac_repo *r, struct ac_str chat_id, int64_t upto, ac_message_fn fn, void *arg)
{
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = exec(r, S_BEGIN)) != AC_OK)
		return err;
	if ((err = stmt(r, S_HISTORY, &s)) != AC_OK)
		goto out;
	bind_str(s, 1, chat_id);
	sqlite3_bind_int64(s, 2, upto);
	err = each_message(r, s, fn, arg);
	if (err == AC_ETOOBIG)
		err = AC_OK;
out:
	return commit(r, err);
}

static enum ac_err
locked_reply_add(struct ac_repo *r, struct ac_str chat_id, const struct ac_reply *reply, int64_t *id,
    int64_t *created_at)
{
	int64_t now = ac_now_us();
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = exec(r, S_BEGIN_WRITE)) != AC_OK)
		return err;
	if (reply->replace_id > 0) {
		if ((err = stmt(r, S_MSG_DELETE, &s)) != AC_OK)
			goto out;
		bind_str(s, 1, chat_id);
		sqlite3_bind_int64(s, 2, reply->replace_id);
		if ((err = run(r, s, NULL)) != AC_OK)
			goto out;
	}
	err = insert_message(r, chat_id, AC_ROLE_ASSISTANT, reply->content, reply, now, id);
	if (err != AC_OK)
		goto out;
	*created_at = now;
	if (reply->idem_key.ptr != NULL && !reply->incomplete) {
		if ((err = stmt(r, S_IDEM_DONE, &s)) != AC_OK)
			goto out;
		bind_str(s, 1, reply->user_id);
		bind_str(s, 2, reply->idem_key);
		sqlite3_bind_int64(s, 3, *id);
		err = run(r, s, NULL);
	}
out:
	/* The chat may have been deleted meanwhile: the insert then fails its foreign key. */
	return commit(r, err);
}

static enum ac_err
locked_send_unlock(struct ac_repo *r, struct ac_str user_id, struct ac_str idem_key)
{
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_IDEM_LOCK, &s)) != AC_OK)
		return err;
	bind_str(s, 1, user_id);
	bind_str(s, 2, idem_key);
	sqlite3_bind_int64(s, 3, 0);
	return run(r, s, NULL);
}

struct counted {
	ac_message_fn fn;
	void *arg;
	int n;
};

static enum ac_err
count_message(void *arg, const struct ac_message *m)
{
	struct counted *c = arg;

	c->n++;
	return c->fn(c->arg, m);
}

enum ac_err
ac_repo_message_get(struct ac_repo *r, struct ac_str chat_id, int64_t id, ac_message_fn fn, void *arg)
{
	struct counted c = { fn, arg, 0 };
	sqlite3_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_MSG_GET, &s)) != AC_OK)
		return err;
	bind_str(s, 1, chat_id);
	sqlite3_bind_int64(s, 2, id);
	err = each_message(r, s, count_message, &c);
	return err == AC_OK && c.n == 0 ? AC_ENOTFOUND : err;
}

/*
 * Writers of one process take turns on a mutex before they ask SQLite for its lock: a thousand
 * threads polling the database file's lock would starve the one holding it.  Only the processes
 * contend on the file, and SQLite's busy handler (on_busy) settles that.
 */
static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;

static enum ac_err
write_lock(struct ac_repo *r)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(r->busy_timeout_us / 1000000);
	until.tv_nsec += (long)(r->busy_timeout_us % 1000000) * 1000;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	rc = pthread_mutex_timedlock(&writer, &until);
	if (rc == 0)
		return AC_OK;
	snprintf(r->errmsg, sizeof(r->errmsg), "database is locked");
	return AC_EBUSY;
}

enum ac_err
ac_repo_chat_create(struct ac_repo *r, struct ac_str user_id, struct ac_str title, ac_chat_fn fn,
    void *arg)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_chat_create(r, user_id, title, fn, arg);
	pthread_mutex_unlock(&writer);
	return err;
}

enum ac_err
ac_repo_chat_rename(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, ac_chat_fn fn, void *arg)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_chat_rename(r, chat_id, user_id, title, fn, arg);
	pthread_mutex_unlock(&writer);
	return err;
}

enum ac_err
ac_repo_chat_delete(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_chat_delete(r, chat_id, user_id);
	pthread_mutex_unlock(&writer);
	return err;
}

enum ac_err
ac_repo_send_begin(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str content,
    struct ac_str idem_key, int64_t lock_until_us, struct ac_send *out)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_send_begin(r, chat_id, user_id, content, idem_key, lock_until_us, out);
	pthread_mutex_unlock(&writer);
	return err;
}

enum ac_err
ac_repo_reply_add(struct ac_repo *r, struct ac_str chat_id, const struct ac_reply *reply, int64_t *id,
    int64_t *created_at)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_reply_add(r, chat_id, reply, id, created_at);
	pthread_mutex_unlock(&writer);
	return err;
}

enum ac_err
ac_repo_send_unlock(struct ac_repo *r, struct ac_str user_id, struct ac_str idem_key)
{
	enum ac_err err = write_lock(r);

	if (err != AC_OK)
		return err;
	err = locked_send_unlock(r, user_id, idem_key);
	pthread_mutex_unlock(&writer);
	return err;
}
