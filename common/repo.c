/* The repository's connection, its shared helpers, and chats and their message pages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_CHAT_INSERT,
	S_CHAT_GET,
	S_CHAT_COUNT,
	S_CHAT_LIST,
	S_CHAT_RENAME,
	S_CHAT_DELETE,
	S_CHAT_OWNED,
	S_CHAT_LOCK,
	S_MSG_AFTER,
	S_MSG_BEFORE,
	S_MSG_GET,
	S_PING,
	S_CHAT_VERSION,
	S_CHAT_UPDATE,
	S_COUNT
};

/* A message's shown siblings (itself included), as "id,id,...": children of its parent, or the
 * chat's first messages. */
#define SIBLINGS_LITE_OF(t) "(SELECT group_concat(s.id) FROM messages s WHERE s.chat_id = " t ".chat_id " \
	"AND s.parent_id IS " t ".parent_id AND s.state < 2)"
/* PostgreSQL: an equality the index (chat_id, parent_id, id) serves, roots apart (an OR or IS NOT
 * DISTINCT FROM would scan the chat's messages for every row: 4.4 ms a page, against 1.5 ms). */
#define SIBLINGS_PG_OF(t) "(CASE WHEN " t ".parent_id IS NULL THEN (SELECT string_agg(s.id::text, ',' " \
	"ORDER BY s.id) FROM messages s WHERE s.chat_id = " t ".chat_id AND s.parent_id IS NULL AND s.state < 2) " \
	"ELSE (SELECT string_agg(s.id::text, ',' ORDER BY s.id) FROM messages s WHERE s.chat_id = " t ".chat_id " \
	"AND s.parent_id = " t ".parent_id AND s.state < 2) END)"
#define SIBLINGS_LITE SIBLINGS_LITE_OF("m")
#define SIBLINGS_PG SIBLINGS_PG_OF("m")

static const struct ac_sql sql[S_COUNT] = {
	[S_CHAT_INSERT] = { "INSERT INTO chats (id, user_id, title, created_at, updated_at) "
	    "VALUES ($1, $2, $3, $4, $4) RETURNING " AC_CHAT_COLUMNS, NULL },
	[S_CHAT_GET] = { "SELECT " AC_CHAT_COLUMNS " FROM chats WHERE id = $1 AND user_id = $2", NULL },
	[S_CHAT_COUNT] = { "SELECT count(*) FROM chats WHERE user_id = $1 AND ($2 < 0 OR archived = $2)", NULL },
	[S_CHAT_LIST] = { "SELECT " AC_CHAT_COLUMNS " FROM chats WHERE user_id = $1 AND ($4 < 0 OR archived = $4) "
	    "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT $2 OFFSET $3", NULL },
	[S_CHAT_RENAME] = { "UPDATE chats SET title = $3, updated_at = max($4, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 RETURNING " AC_CHAT_COLUMNS,
	    "UPDATE chats SET title = $3, updated_at = greatest($4, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 RETURNING " AC_CHAT_COLUMNS },
	[S_CHAT_DELETE] = { "DELETE FROM chats WHERE id = $1 AND user_id = $2", NULL },
	[S_CHAT_OWNED] = { "SELECT 1 FROM chats WHERE id = $1 AND user_id = $2", NULL },
	/* Writers of one chat take turns: SQLite's write lock already orders them; PostgreSQL locks the
	 * chat's row till the end of the transaction. */
	[S_CHAT_LOCK] = { "SELECT 1 FROM chats WHERE id = $1 AND user_id = $2",
	    "SELECT 1 FROM chats WHERE id = $1 AND user_id = $2 FOR UPDATE" },
	/*
	 * A page of the active path in one statement (one snapshot): the rows, only when the chat is the
	 * user's, each with whether a message lies past the page (both subqueries are run once, not
	 * per row) and its siblings' ids.
	 */
	[S_MSG_AFTER] = { "SELECT " AC_MSG_COLUMNS_OF("m") ", (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 "
	    "AND active = 1 AND state < 2 AND id > $3 ORDER BY id LIMIT 1 OFFSET $4)), " SIBLINGS_LITE
	    " FROM messages m WHERE m.chat_id = $1 AND m.active = 1 AND m.state < 2 AND m.id > $3 "
	    "AND EXISTS (SELECT 1 FROM chats WHERE id = $1 AND user_id = $2) ORDER BY m.id LIMIT $4",
	    "SELECT " AC_MSG_COLUMNS_OF("m") ", (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 "
	    "AND active = 1 AND state < 2 AND id > $3 ORDER BY id LIMIT 1 OFFSET $4)), " SIBLINGS_PG
	    " FROM messages m WHERE m.chat_id = $1 AND m.active = 1 AND m.state < 2 AND m.id > $3 "
	    "AND EXISTS (SELECT 1 FROM chats WHERE id = $1 AND user_id = $2) ORDER BY m.id LIMIT $4" },
	[S_MSG_BEFORE] = { "SELECT p.*, (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 AND active = 1 "
	    "AND state < 2 AND id < $3 ORDER BY id DESC LIMIT 1 OFFSET $4)), " SIBLINGS_LITE_OF("p")
	    " FROM (SELECT " AC_MSG_COLUMNS " FROM messages "
	    "WHERE chat_id = $1 AND active = 1 AND state < 2 AND id < $3 ORDER BY id DESC LIMIT $4) p "
	    "WHERE EXISTS (SELECT 1 FROM chats WHERE id = $1 AND user_id = $2) ORDER BY p.id",
	    "SELECT p.*, (SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 AND active = 1 "
	    "AND state < 2 AND id < $3 ORDER BY id DESC LIMIT 1 OFFSET $4)), " SIBLINGS_PG_OF("p")
	    " FROM (SELECT " AC_MSG_COLUMNS " FROM messages "
	    "WHERE chat_id = $1 AND active = 1 AND state < 2 AND id < $3 ORDER BY id DESC LIMIT $4) p "
	    "WHERE EXISTS (SELECT 1 FROM chats WHERE id = $1 AND user_id = $2) ORDER BY p.id" },
	[S_MSG_GET] = { "SELECT " AC_MSG_COLUMNS " FROM messages WHERE chat_id = $1 AND id = $2", NULL },
	/* A read that reaches the database's tables, not only the connection. */
	[S_PING] = { "SELECT count(*) FROM (SELECT 1 FROM chats LIMIT 1) t", NULL },
	[S_CHAT_VERSION] = { "SELECT updated_at FROM chats WHERE id = $1 AND user_id = $2", NULL },
	/* Each setting: $n = 1 sets it to $n+1 (NULL included); a boolean NULL leaves it. */
	[S_CHAT_UPDATE] = { "UPDATE chats SET title = CASE WHEN $3 = 1 THEN $4 ELSE title END, "
	    "system_prompt = CASE WHEN $5 = 1 THEN $6 ELSE system_prompt END, "
	    "model = CASE WHEN $7 = 1 THEN $8 ELSE model END, pinned = coalesce($9, pinned), "
	    "archived = coalesce($10, archived), updated_at = max($11, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 RETURNING " AC_CHAT_COLUMNS,
	    "UPDATE chats SET title = CASE WHEN $3 = 1 THEN $4 ELSE title END, "
	    "system_prompt = CASE WHEN $5 = 1 THEN $6 ELSE system_prompt END, "
	    "model = CASE WHEN $7 = 1 THEN $8 ELSE model END, pinned = coalesce($9, pinned), "
	    "archived = coalesce($10, archived), updated_at = greatest($11, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 RETURNING " AC_CHAT_COLUMNS },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_CHATS, sql, i, out);
}

enum ac_err
ac_repo_migrate(const struct ac_db_conf *conf, char *msg, size_t msg_size)
{
	return ac_db_migrate(conf, msg, msg_size);
}

enum ac_err
ac_repo_open(const struct ac_db_conf *conf, struct ac_repo **out)
{
	struct ac_repo *r = calloc(1, sizeof(*r));
	enum ac_err err;

	*out = NULL;
	if (r == NULL)
		return AC_ENOMEM;
	err = ac_db_open(conf, &r->db);
	if (err != AC_OK) {
		ac_repo_close(r);
		return err;
	}
	*out = r;
	return AC_OK;
}

void
ac_repo_trim(struct ac_repo *r)
{
	if (r != NULL)
		ac_db_trim(r->db);
}

void
ac_repo_close(struct ac_repo *r)
{
	if (r == NULL)
		return;
	free(r->siblings);
	ac_db_close(r->db);
	free(r);
}

const char *
ac_repo_errmsg(const struct ac_repo *r)
{
	return ac_db_errmsg(r->db);
}

enum ac_err
ac_repo_ping(struct ac_repo *r)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t n;

	if ((err = stmt(r, S_PING, &s)) != AC_OK)
		return err;
	return ac_repo_one_int(s, &n);
}

enum ac_err
ac_repo_run(struct ac_stmt *s, int64_t *changes)
{
	bool row;
	enum ac_err err = ac_db_step(s, &row);

	if (err == AC_OK && changes != NULL)
		*changes = ac_db_changes(s);
	ac_db_done(s);
	return err;
}

enum ac_err
ac_repo_one_int(struct ac_stmt *s, int64_t *out)
{
	bool row = false;
	enum ac_err err = ac_db_step(s, &row);

	if (err == AC_OK && row)
		*out = ac_db_col_int(s, 0);
	ac_db_done(s);
	if (err != AC_OK)
		return err;
	return row ? AC_OK : AC_ENOTFOUND;
}

enum ac_err
ac_repo_write_one(struct ac_repo *r, int base, const struct ac_sql *table, int i, struct ac_str a, struct ac_str b)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t changed = 0;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = REPO_STMT(r, base, table, i, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, a);
	if (b.ptr != NULL)
		ac_db_bind_str(s, 2, b);
	err = ac_repo_run(s, &changed);
	if (err == AC_OK && changed == 0)
		err = AC_ENOTFOUND;
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_end(struct ac_repo *r, enum ac_err err)
{
	if (err == AC_OK || err == AC_ENOTFOUND) {
		enum ac_err cerr = ac_db_commit(r->db);

		return cerr == AC_OK ? err : cerr;
	}
	ac_db_rollback(r->db);
	return err;
}

enum ac_err
ac_repo_each_chat(struct ac_stmt *s, ac_chat_fn fn, void *arg)
{
	enum ac_err err, ferr = AC_ENOTFOUND;
	bool row;

	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_chat c;

		c.id = ac_db_col_str(s, 0);
		c.user_id = ac_db_col_str(s, 1);
		c.title = ac_db_col_str(s, 2);
		c.created_at = ac_db_col_int(s, 3);
		c.updated_at = ac_db_col_int(s, 4);
		c.message_count = ac_db_col_int(s, 5);
		c.system_prompt = ac_db_col_str(s, 6);
		c.model = ac_db_col_str(s, 7);
		c.pinned = ac_db_col_int(s, 8) != 0;
		c.archived = ac_db_col_int(s, 9) != 0;
		ferr = fn != NULL ? fn(arg, &c) : AC_OK;
		if (ferr != AC_OK)
			break;
	}
	ac_db_done(s);
	return err != AC_OK ? err : ferr;
}

/* Reads "id,id,..." into r's sibling list, sorted (oldest first); [self] when there is none. */
static enum ac_err
siblings(struct ac_repo *r, struct ac_str list, int64_t self, struct ac_message *m)
{
	size_t n = 0;

	for (size_t i = 0; i < list.len; i++)
		n += list.ptr[i] == ',';
	n++;
	if (n > r->siblings_cap) {
		size_t cap = n < 16 ? 16 : n;
		int64_t *p = realloc(r->siblings, cap * sizeof(*p));

		if (p == NULL)
			return AC_ENOMEM;
		r->siblings = p;
		r->siblings_cap = cap;
	}
	m->sibling_ids = r->siblings;
	m->sibling_count = 0;
	for (size_t i = 0; i < list.len;) {
		int64_t v = 0;

		while (i < list.len && list.ptr[i] >= '0' && list.ptr[i] <= '9' && v < INT64_MAX / 10)
			v = v * 10 + (list.ptr[i++] - '0');
		if (v > 0 && m->sibling_count < n)
			r->siblings[m->sibling_count++] = v;
		while (i < list.len && (list.ptr[i] < '0' || list.ptr[i] > '9'))
			i++;
	}
	if (m->sibling_count == 0)
		r->siblings[m->sibling_count++] = self;
	/* Insertion sort: alternatives are few. */
	for (size_t i = 1; i < m->sibling_count; i++) {
		int64_t v = r->siblings[i];
		size_t j = i;

		for (; j > 0 && r->siblings[j - 1] > v; j--)
			r->siblings[j] = r->siblings[j - 1];
		r->siblings[j] = v;
	}
	return AC_OK;
}

/*
 * Steps a statement that yields messages (AC_MSG_COLUMNS), handing each to fn.  A page (r not NULL)
 * has two more columns: whether more messages lie past the page (*more is set before the first row
 * is handed on; *rows counts them), and the message's siblings.
 */
static enum ac_err
each_message_page(struct ac_repo *r, struct ac_stmt *s, bool *more, int64_t *rows, ac_message_fn fn,
    void *arg)
{
	enum ac_err err, ferr = AC_OK;
	bool row;

	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_message m;
		struct ac_str role = ac_db_col_str(s, 2);

		memset(&m, 0, sizeof(m));
		m.id = ac_db_col_int(s, 0);
		m.chat_id = ac_db_col_str(s, 1);
		m.role = role.len > 0 && role.ptr[0] == 'a' ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		m.content = ac_db_col_str(s, 3);
		if (m.content.ptr == NULL)
			m.content = AC_STR("");
		m.created_at = ac_db_col_int(s, 4);
		m.incomplete = ac_db_col_int(s, 5) == AC_STATE_INCOMPLETE;
		m.model = ac_db_col_str(s, 6);
		m.prompt_tokens = ac_db_col_int(s, 7);
		m.completion_tokens = ac_db_col_int(s, 8);
		m.parent_id = ac_db_col_int(s, 9);
		if (r != NULL) {
			if ((*rows)++ == 0)
				*more = ac_db_col_int(s, AC_MSG_NCOLUMNS) != 0;
			if ((ferr = siblings(r, ac_db_col_str(s, AC_MSG_NCOLUMNS + 1), m.id, &m)) != AC_OK)
				break;
		}
		if ((ferr = fn(arg, &m)) != AC_OK)
			break;
	}
	ac_db_done(s);
	return err != AC_OK ? err : ferr;
}

enum ac_err
ac_repo_each_message(struct ac_stmt *s, ac_message_fn fn, void *arg)
{
	return each_message_page(NULL, s, NULL, NULL, fn, arg);
}

enum ac_err
ac_repo_chat_create(struct ac_repo *r, struct ac_str user_id, struct ac_str title, ac_chat_fn fn,
    void *arg)
{
	char id[AC_UUID_LEN + 1];
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_INSERT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
	ac_db_bind_str(s, 2, user_id);
	ac_db_bind_str(s, 3, title);
	ac_db_bind_int(s, 4, ac_now_us());
	err = ac_repo_each_chat(s, fn, arg);
	if (err == AC_ENOTFOUND)
		err = AC_EDB;
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_chat_version(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, int64_t *version)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_CHAT_VERSION, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	return ac_repo_one_int(s, version);
}

enum ac_err
ac_repo_chat_get(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, ac_chat_fn fn,
    void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_CHAT_GET, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	return ac_repo_each_chat(s, fn, arg);
}

/* archived: 0 or 1 for those chats, -1 for all. */
static enum ac_err
chat_list(struct ac_repo *r, struct ac_str user_id, int archived, int64_t limit, int64_t offset,
    int64_t *total, ac_chat_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	/* One read transaction, so that total and the page agree. */
	*total = 0;
	if ((err = ac_db_begin(r->db, AC_TXN_READ)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_COUNT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_int(s, 2, archived);
	if ((err = ac_repo_one_int(s, total)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_CHAT_LIST, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_int(s, 2, limit);
	ac_db_bind_int(s, 3, offset);
	ac_db_bind_int(s, 4, archived);
	err = ac_repo_each_chat(s, fn, arg);
	if (err == AC_ENOTFOUND)
		err = AC_OK;
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_chat_list(struct ac_repo *r, struct ac_str user_id, int64_t limit, int64_t offset,
    int64_t *total, ac_chat_fn fn, void *arg)
{
	return chat_list(r, user_id, -1, limit, offset, total, fn, arg);
}

enum ac_err
ac_repo_chat_list_archived(struct ac_repo *r, struct ac_str user_id, bool archived, int64_t limit,
    int64_t offset, int64_t *total, ac_chat_fn fn, void *arg)
{
	return chat_list(r, user_id, archived, limit, offset, total, fn, arg);
}

enum ac_err
ac_repo_chat_rename(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, ac_chat_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_RENAME, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	ac_db_bind_str(s, 3, title);
	ac_db_bind_int(s, 4, ac_now_us());
	err = ac_repo_each_chat(s, fn, arg);
out:
	return ac_repo_end(r, err);
}

/* Binds $n (whether to set) and $n+1 (the value) of a text setting. */
static void
bind_setting(struct ac_stmt *s, int n, bool set, struct ac_str v)
{
	ac_db_bind_int(s, n, set);
	if (set)
		ac_db_bind_str(s, n + 1, v);
	else
		ac_db_bind_null(s, n + 1);
}

static void
bind_flag(struct ac_stmt *s, int n, bool set, bool v)
{
	if (set)
		ac_db_bind_int(s, n, v);
	else
		ac_db_bind_null(s, n);
}

enum ac_err
ac_repo_chat_update(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_chat_update *u, ac_chat_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_CHAT_UPDATE, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	bind_setting(s, 3, u->set_title, u->title);
	bind_setting(s, 5, u->set_system_prompt, u->system_prompt);
	bind_setting(s, 7, u->set_model, u->model);
	bind_flag(s, 9, u->set_pinned, u->pinned);
	bind_flag(s, 10, u->set_archived, u->archived);
	ac_db_bind_int(s, 11, ac_now_us());
	err = ac_repo_each_chat(s, fn, arg);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_chat_delete(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	return ac_repo_write_one(r, AC_SQL_CHATS, sql, S_CHAT_DELETE, chat_id, user_id);
}

static enum ac_err
owned(struct ac_repo *r, int i, struct ac_str chat_id, struct ac_str user_id)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t one;

	if ((err = stmt(r, i, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	return ac_repo_one_int(s, &one);
}

enum ac_err
ac_repo_chat_owned(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	return owned(r, S_CHAT_OWNED, chat_id, user_id);
}

enum ac_err
ac_repo_chat_lock(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id)
{
	return owned(r, S_CHAT_LOCK, chat_id, user_id);
}

enum ac_err
ac_repo_message_list(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    const struct ac_page *page, bool *more, ac_message_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t rows = 0;

	*more = false;
	if ((err = stmt(r, page->backward ? S_MSG_BEFORE : S_MSG_AFTER, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	ac_db_bind_int(s, 3, page->cursor);
	ac_db_bind_int(s, 4, page->limit);
	err = each_message_page(r, s, more, &rows, fn, arg);
	if (err != AC_OK || rows > 0)
		return err;
	/* No rows: an empty page of the user's chat, or not the user's chat at all. */
	return ac_repo_chat_owned(r, chat_id, user_id);
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
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_MSG_GET, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, id);
	err = ac_repo_each_message(s, count_message, &c);
	return err == AC_OK && c.n == 0 ? AC_ENOTFOUND : err;
}
