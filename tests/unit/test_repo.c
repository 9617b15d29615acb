/*
 * The repository (common/repo*.c) over both engines, through the same interface: migration,
 * ownership, ordering, paging, cascade, NUL bytes, schema versions, unusable databases.  The
 * PostgreSQL half runs on the database AC_TEST_PG_URL names (tests/run.sh starts a throwaway cluster;
 * without it those tests are skipped), its schema made anew for each test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#include "../../common/db.h"
#include "../../common/limits.h"
#include "../../common/repo.h"

static enum ac_db_kind engine;		/* the group running */

struct fixture {
	char dir[64];
	char path[96];
	struct ac_db_conf conf;
	struct ac_repo *repo;
};

/* Runs one statement (a text per engine) on a connection of its own; binds strings $1.., ints after. */
static void
run_sql(struct fixture *f, const struct ac_sql *sql, int nstr, const char *const *strs, int nint,
    const int64_t *ints)
{
	struct ac_db *db = NULL;
	struct ac_stmt *st;
	bool row;

	assert_int_equal(ac_db_open(&f->conf, &db), AC_OK);
	assert_int_equal(ac_db_stmt(db, 0, sql, &st), AC_OK);
	for (int i = 0; i < nstr; i++)
		ac_db_bind_str(st, i + 1, (struct ac_str){ strs[i], strlen(strs[i]) });
	for (int i = 0; i < nint; i++)
		ac_db_bind_int(st, nstr + i + 1, ints[i]);
	do
		assert_int_equal(ac_db_step(st, &row), AC_OK);
	while (row);
	ac_db_done(st);
	ac_db_close(db);
}

/* The first column of a one-row query, as an integer. */
static int64_t
query_int(struct fixture *f, const struct ac_sql *sql, const char *arg)
{
	struct ac_db *db = NULL;
	struct ac_stmt *st;
	bool row = false;
	int64_t v;

	assert_int_equal(ac_db_open(&f->conf, &db), AC_OK);
	assert_int_equal(ac_db_stmt(db, 0, sql, &st), AC_OK);
	if (arg != NULL)
		ac_db_bind_str(st, 1, (struct ac_str){ arg, strlen(arg) });
	assert_int_equal(ac_db_step(st, &row), AC_OK);
	assert_true(row);
	v = ac_db_col_int(st, 0);
	ac_db_done(st);
	ac_db_close(db);
	return v;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char msg[256];

	f->conf.busy_timeout_ms = 1000;
	f->conf.statement_timeout_ms = 10000;
	f->conf.prepared = true;
	f->conf.kind = engine;
	if (engine == AC_DB_PG) {
		static const struct ac_sql drop = { NULL, "DROP SCHEMA public CASCADE" };
		static const struct ac_sql create = { NULL, "CREATE SCHEMA public" };
		const char *url = getenv("AC_TEST_PG_URL");

		if (url == NULL || *url == '\0') {
			free(f);
			skip();
		}
		/* The schema made anew for every test. */
		f->conf.target = url;
		run_sql(f, &drop, 0, NULL, 0, NULL);
		run_sql(f, &create, 0, NULL, 0, NULL);
	} else {
		snprintf(f->dir, sizeof(f->dir), "/tmp/ac-repo-test.XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
		f->conf.target = f->path;
	}
	assert_int_equal(ac_repo_migrate(&f->conf, msg, sizeof(msg)), AC_OK);
	/* a second run finds the schema current and changes nothing */
	assert_int_equal(ac_repo_migrate(&f->conf, msg, sizeof(msg)), AC_OK);
	assert_int_equal(ac_repo_open(&f->conf, &f->repo), AC_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	ac_repo_close(f->repo);
	if (f->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
		assert_int_equal(system(cmd), 0);
	}
	free(f);
	return 0;
}

/* The last chat a callback saw, copied. */
struct seen {
	char id[40];
	char user[64];
	size_t user_len;
	char title[64];
	size_t title_len;
	int has_title;
	int64_t created, updated, count;
	int calls;
	int64_t ids[16];
	int nids;
};

static enum ac_err
keep_chat(void *arg, const struct ac_chat *c)
{
	struct seen *s = arg;

	memcpy(s->id, c->id.ptr, c->id.len);
	s->id[c->id.len] = '\0';
	memcpy(s->user, c->user_id.ptr, c->user_id.len);
	s->user_len = c->user_id.len;
	s->has_title = c->title.ptr != NULL;
	if (s->has_title) {
		memcpy(s->title, c->title.ptr, c->title.len);
		s->title_len = c->title.len;
	}
	s->created = c->created_at;
	s->updated = c->updated_at;
	s->count = c->message_count;
	s->calls++;
	return AC_OK;
}

static enum ac_err
keep_message(void *arg, const struct ac_message *m)
{
	struct seen *s = arg;

	if (s->nids < 16)
		s->ids[s->nids++] = m->id;
	return AC_OK;
}

static struct ac_str
str(const char *s)
{
	return (struct ac_str){ s, strlen(s) };
}

static void
add_messages(struct fixture *f, const char *chat_id, int n)
{
	/* a single path: each message follows the one before */
	static const struct ac_sql insert = { "INSERT INTO messages (chat_id, parent_id, role, content, created_at) "
	    "VALUES ($1, (SELECT max(id) FROM messages WHERE chat_id = $1), $2, $3, $4)", NULL };
	static const struct ac_sql count = { "UPDATE chats SET message_count = message_count + 1 WHERE id = $1",
	    NULL };

	for (int i = 0; i < n; i++) {
		char content[16];
		const char *strs[3] = { chat_id, i % 2 ? "assistant" : "user", content };
		int64_t at = i;

		snprintf(content, sizeof(content), "m%d", i);
		run_sql(f, &insert, 3, strs, 1, &at);
		run_sql(f, &count, 1, strs, 0, NULL);
	}
}

static void
create_get_round_trips_nul_and_ownership(void **state)
{
	struct fixture *f = *state;
	struct seen a = { .calls = 0 }, b = { .calls = 0 };
	struct ac_str user = { "u\0x", 3 }, title = { "t\0\xc3\xa9", 4 };

	assert_int_equal(ac_repo_chat_create(f->repo, user, title, keep_chat, &a), AC_OK);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.created, a.updated);
	assert_int_equal(ac_repo_chat_get(f->repo, str(a.id), user, keep_chat, &b), AC_OK);
	assert_int_equal(b.user_len, 3);
	assert_memory_equal(b.user, "u\0x", 3);
	assert_int_equal(b.title_len, 4);
	assert_memory_equal(b.title, "t\0\xc3\xa9", 4);
	/* same id, another user (and "u" alone, the prefix before the NUL): not found */
	assert_int_equal(ac_repo_chat_get(f->repo, str(a.id), str("u"), keep_chat, &b), AC_ENOTFOUND);
	assert_int_equal(ac_repo_chat_rename(f->repo, str(a.id), str("other"), str("x"), keep_chat, &b),
	    AC_ENOTFOUND);
	assert_int_equal(ac_repo_chat_delete(f->repo, str(a.id), str("other")), AC_ENOTFOUND);
	assert_int_equal(ac_repo_chat_get(f->repo, str(a.id), user, NULL, NULL), AC_OK);
}

static void
list_orders_by_updated_and_counts(void **state)
{
	struct fixture *f = *state;
	struct seen c[3], got = { .calls = 0 };
	int64_t total = 0;

	for (int i = 0; i < 3; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		assert_int_equal(ac_repo_chat_create(f->repo, str("lister"), (struct ac_str){ NULL, 0 },
		    keep_chat, &c[i]), AC_OK);
		assert_false(c[i].has_title);
	}
	/* renaming the oldest makes it the newest */
	assert_int_equal(ac_repo_chat_rename(f->repo, str(c[0].id), str("lister"), str("new"), keep_chat,
	    &got), AC_OK);
	assert_true(got.updated > c[0].updated);
	assert_int_equal(got.created, c[0].created);
	memset(&got, 0, sizeof(got));
	assert_int_equal(ac_repo_chat_list(f->repo, str("lister"), 1, 0, &total, keep_chat, &got), AC_OK);
	assert_int_equal(total, 3);
	assert_int_equal(got.calls, 1);
	assert_string_equal(got.id, c[0].id);
	memset(&got, 0, sizeof(got));
	assert_int_equal(ac_repo_chat_list(f->repo, str("lister"), 10, 2, &total, keep_chat, &got), AC_OK);
	assert_int_equal(got.calls, 1);
	assert_string_equal(got.id, c[1].id);
	assert_int_equal(ac_repo_chat_list(f->repo, str("nobody"), 10, 0, &total, keep_chat, &got), AC_OK);
	assert_int_equal(total, 0);
}

static void
messages_page_both_ways(void **state)
{
	struct fixture *f = *state;
	struct seen chat = { .calls = 0 }, s;
	struct ac_page page;
	bool more;
	int64_t first;

	assert_int_equal(ac_repo_chat_create(f->repo, str("pager"), str("p"), keep_chat, &chat), AC_OK);
	add_messages(f, chat.id, 10);
	assert_int_equal(ac_repo_chat_get(f->repo, str(chat.id), str("pager"), keep_chat, &chat), AC_OK);
	assert_int_equal(chat.count, 10);

	memset(&s, 0, sizeof(s));
	page = (struct ac_page){ 4, 0, false };
	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("pager"), &page, &more,
	    keep_message, &s), AC_OK);
	assert_int_equal(s.nids, 4);
	assert_true(more);
	first = s.ids[0];
	for (int i = 1; i < 4; i++)
		assert_int_equal(s.ids[i], first + i);

	/* the newest 4, oldest first, then the 4 before them, then the last 2 */
	memset(&s, 0, sizeof(s));
	page = (struct ac_page){ 4, INT64_MAX, true };
	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("pager"), &page, &more,
	    keep_message, &s), AC_OK);
	assert_int_equal(s.nids, 4);
	assert_int_equal(s.ids[0], first + 6);
	assert_int_equal(s.ids[3], first + 9);
	assert_true(more);
	memset(&s, 0, sizeof(s));
	page = (struct ac_page){ 4, first + 2, true };
	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("pager"), &page, &more,
	    keep_message, &s), AC_OK);
	assert_int_equal(s.nids, 2);
	assert_int_equal(s.ids[0], first);
	assert_false(more);

	/* forward from the 8th: the last two, and nothing after */
	memset(&s, 0, sizeof(s));
	page = (struct ac_page){ 4, first + 7, false };
	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("pager"), &page, &more,
	    keep_message, &s), AC_OK);
	assert_int_equal(s.nids, 2);
	assert_false(more);

	/* exactly a page left: no more */
	memset(&s, 0, sizeof(s));
	page = (struct ac_page){ 2, first + 7, false };
	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("pager"), &page, &more,
	    keep_message, &s), AC_OK);
	assert_int_equal(s.nids, 2);
	assert_false(more);

	assert_int_equal(ac_repo_message_list(f->repo, str(chat.id), str("intruder"), &page, &more,
	    keep_message, &s), AC_ENOTFOUND);
}

static void
delete_cascades_to_messages(void **state)
{
	static const struct ac_sql count = { "SELECT count(*) FROM messages WHERE chat_id = $1", NULL };
	struct fixture *f = *state;
	struct seen chat = { .calls = 0 };

	assert_int_equal(ac_repo_chat_create(f->repo, str("del"), str("d"), keep_chat, &chat), AC_OK);
	add_messages(f, chat.id, 3);
	assert_int_equal(query_int(f, &count, chat.id), 3);
	assert_int_equal(ac_repo_chat_delete(f->repo, str(chat.id), str("del")), AC_OK);
	assert_int_equal(ac_repo_chat_delete(f->repo, str(chat.id), str("del")), AC_ENOTFOUND);
	assert_int_equal(query_int(f, &count, chat.id), 0);
}

static void
schema_newer_than_program_is_refused(void **state)
{
	static const struct ac_sql newer = { "PRAGMA user_version = 999",
	    "INSERT INTO schema_migrations (version) VALUES (999)" };
	struct fixture *f = *state;
	char msg[256];

	run_sql(f, &newer, 0, NULL, 0, NULL);
	assert_int_equal(ac_repo_migrate(&f->conf, msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "999"));
}

/* The schema's version is recorded in the database: one row per migration on PostgreSQL. */
static void
schema_version_is_recorded(void **state)
{
	static const struct ac_sql version = { "PRAGMA user_version",
	    "SELECT max(version) FROM schema_migrations" };
	static const struct ac_sql rows = { "SELECT 1", "SELECT count(*) FROM schema_migrations" };
	struct fixture *f = *state;
	size_t n;
	const struct ac_migration *m = ac_db_migrations(engine, &n);

	assert_true(n >= 2);
	assert_int_equal(query_int(f, &version, NULL), m[n - 1].version);
	if (engine == AC_DB_PG)
		assert_int_equal(query_int(f, &rows, NULL), (int64_t)n);
}

static void
ping_and_unreadable_database(void **state)
{
	struct fixture *f = *state;
	struct ac_db_conf bad = f->conf;
	struct ac_repo *r = NULL;
	char msg[256];

	assert_int_equal(ac_repo_ping(f->repo), AC_OK);
	bad.busy_timeout_ms = 100;
	if (engine == AC_DB_SQLITE) {
		bad.target = "/nonexistent-dir/x.db";
		assert_int_equal(ac_repo_open(&bad, &r), AC_EDB);
		assert_null(r);
		assert_int_equal(ac_repo_migrate(&bad, msg, sizeof(msg)), AC_EDB);
		assert_non_null(strstr(msg, "/nonexistent-dir/x.db"));
		return;
	}
	/* PostgreSQL connects on first use: the worker starts, and recovers, while the server is away. */
	bad.target = "postgresql://ai:hunter2-secret@/x?host=/nonexistent-dir&port=1";
	assert_int_equal(ac_repo_open(&bad, &r), AC_OK);
	assert_int_equal(ac_repo_ping(r), AC_EDB);
	assert_non_null(strstr(ac_repo_errmsg(r), "nonexistent-dir"));
	assert_null(strstr(ac_repo_errmsg(r), "hunter2"));
	ac_repo_close(r);
	assert_int_equal(ac_repo_migrate(&bad, msg, sizeof(msg)), AC_EDB);
	assert_non_null(strstr(msg, "nonexistent-dir"));
	assert_null(strstr(msg, "hunter2"));
	bad.target = "host=/tmp port=notanumber password=hunter2-secret x";
	assert_int_equal(ac_repo_open(&bad, &r), AC_EINVAL);
	assert_null(r);
	assert_int_equal(ac_repo_migrate(&bad, msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "x"));
	assert_null(strstr(msg, "hunter2"));
}

/* PostgreSQL: a process holds at most DB_POOL_SIZE connections; past it, a thread waits the busy timeout. */
static void
pool_size_is_a_limit(void **state)
{
	struct fixture *f = *state;
	struct ac_db_conf one = f->conf;
	struct ac_repo *a = NULL, *b = NULL;
	struct ac_db *held = NULL;
	int64_t total;

	if (engine != AC_DB_PG)
		skip();
	one.pool_size = 1;
	one.busy_timeout_ms = 150;
	assert_int_equal(ac_db_open(&one, &held), AC_OK);
	assert_int_equal(ac_repo_open(&one, &a), AC_OK);
	assert_int_equal(ac_repo_open(&one, &b), AC_OK);
	assert_int_equal(ac_repo_ping(a), AC_OK);
	assert_int_equal(ac_db_begin(held, AC_TXN_READ), AC_OK);	/* the one connection, held */
	assert_int_equal(ac_repo_ping(a), AC_EBUSY);
	assert_non_null(strstr(ac_repo_errmsg(a), "DB_POOL_SIZE=1"));
	assert_int_equal(ac_repo_chat_list(b, str("x"), 10, 0, &total, NULL, NULL), AC_EBUSY);
	ac_db_rollback(held);
	assert_int_equal(ac_repo_ping(a), AC_OK);
	assert_int_equal(ac_repo_chat_list(b, str("x"), 10, 0, &total, NULL, NULL), AC_OK);
	ac_repo_close(a);
	ac_repo_close(b);
	ac_db_close(held);
}

/* A unique key taken is AC_ECONFLICT, a foreign key naming no row AC_ENOTFOUND, on both engines. */
static void
constraint_errors_are_mapped(void **state)
{
	static const struct ac_sql insert = { "INSERT INTO messages (chat_id, role, content, created_at) "
	    "VALUES ($1, 'user', 'x', 1)", NULL };
	static const struct ac_sql dup = { "INSERT INTO chats (id, user_id, created_at, updated_at) "
	    "VALUES ($1, 'u', 1, 1)", NULL };
	struct fixture *f = *state;
	struct seen chat = { .calls = 0 };
	struct ac_db *db = NULL;
	struct ac_stmt *st;
	bool row;

	assert_int_equal(ac_repo_chat_create(f->repo, str("c"), str("t"), keep_chat, &chat), AC_OK);
	assert_int_equal(ac_db_open(&f->conf, &db), AC_OK);
	assert_int_equal(ac_db_begin(db, AC_TXN_WRITE), AC_OK);
	assert_int_equal(ac_db_stmt(db, 1, &insert, &st), AC_OK);
	ac_db_bind_str(st, 1, str("no-such-chat"));
	assert_int_equal(ac_db_step(st, &row), AC_ENOTFOUND);
	ac_db_done(st);
	ac_db_rollback(db);
	assert_int_equal(ac_db_begin(db, AC_TXN_WRITE), AC_OK);
	assert_int_equal(ac_db_stmt(db, 2, &dup, &st), AC_OK);
	ac_db_bind_str(st, 1, str(chat.id));
	assert_int_equal(ac_db_step(st, &row), AC_ECONFLICT);
	ac_db_done(st);
	ac_db_rollback(db);
	assert_false(ac_db_in_txn(db));
	ac_db_close(db);
}

#define SEC 1000000LL

/* The rate (GCRA): a burst of the rate from idle, then one send per minute / rate, Retry-After exact;
 * a refused send does not count. */
static void
limits_rate_is_a_burst_then_steady(void **state)
{
	struct fixture *f = *state;
	struct ac_limits_conf lc = { .rate_per_minute = 3 };
	struct ac_str u = AC_STR("u1"), v = AC_STR("u2");
	struct ac_limit l;
	int64_t t0 = 1000000 * SEC;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + i, t0 + 100 * SEC, &l), AC_OK);
		assert_false(l.refused);
		assert_int_equal(l.slot, 0);	/* no concurrency limit: no slot */
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 5 * SEC, t0 + 100 * SEC, &l), AC_OK);
		assert_true(l.refused);
		assert_int_equal(l.retry_after, 15);	/* the first send's 20 s share, 5 s of it gone */
		assert_non_null(strstr(l.detail, "at most 3 a minute"));
	}
	assert_int_equal(ac_limits_acquire(f->repo, &lc, v, t0 + 5 * SEC, t0 + 100 * SEC, &l), AC_OK);
	assert_false(l.refused);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 20 * SEC + 2, t0 + 100 * SEC, &l), AC_OK);
	assert_false(l.refused);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 21 * SEC, t0 + 100 * SEC, &l), AC_OK);
	assert_true(l.refused);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 120 * SEC, t0 + 200 * SEC, &l), AC_OK);
	assert_false(l.refused);
}

/* Slots: taken up to the limit, given back, expired ones not counted; tokens per UTC day. */
static void
limits_slots_and_tokens(void **state)
{
	struct fixture *f = *state;
	struct ac_limits_conf lc = { .concurrency = 2, .tokens_per_day = 100 };
	struct ac_str u = AC_STR("u\0x");
	struct ac_limit a, b, c;
	int64_t day = 86400 * SEC, t0 = 20000 * day + 10 * SEC;

	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0, t0 + 10 * SEC, &a), AC_OK);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0, t0 + 60 * SEC, &b), AC_OK);
	assert_true(a.slot > 0 && b.slot > 0 && a.slot != b.slot);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0, t0 + 60 * SEC, &c), AC_OK);
	assert_true(c.refused);
	assert_int_equal(c.retry_after, 1);
	/* a's slot runs out (its process died): counted no more */
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 10 * SEC, t0 + 60 * SEC, &c), AC_OK);
	assert_false(c.refused);
	assert_int_equal(ac_limits_release(f->repo, u, b.slot, 60, t0 + 11 * SEC), AC_OK);
	assert_int_equal(ac_limits_release(f->repo, u, c.slot, 40, t0 + 12 * SEC), AC_OK);
	/* 100 tokens used today: refused until midnight UTC */
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + 13 * SEC, t0 + 60 * SEC, &a), AC_OK);
	assert_true(a.refused);
	assert_int_equal(a.retry_after, 86400 - 23);
	assert_non_null(strstr(a.detail, "TOKENS_PER_DAY"));
	/* the next day */
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + day, t0 + day + 60 * SEC, &a), AC_OK);
	assert_false(a.refused);
	assert_int_equal(ac_limits_release(f->repo, u, a.slot, 5, t0 + day), AC_OK);
	assert_int_equal(ac_limits_acquire(f->repo, &lc, u, t0 + day, t0 + day + 60 * SEC, &a), AC_OK);
	assert_false(a.refused);
	assert_int_equal(ac_limits_release(f->repo, u, a.slot, 0, t0 + day), AC_OK);
}

/* AC_TXN_WRITE_LAZY commits without waiting for the disk, and leaves the connection's later commits
 * waiting for it.  SQLite (WAL mode): the connection runs at synchronous = NORMAL and a durable commit
 * returns only after a sync of the write-ahead log (group commit), which a lazy one does not make. */
static void
lazy_write_transaction(void **state)
{
	struct fixture *f = *state;
	static const struct ac_sql ins = { "INSERT INTO ops_leases (name, holder, until) VALUES ($1, 'y', 1)", NULL };
	static const struct ac_sql sync = { "PRAGMA synchronous", "SHOW synchronous_commit" };
	struct ac_db *db = NULL;
	struct ac_stmt *st;
	uint64_t syncs;
	bool row;

	assert_int_equal(ac_db_open(&f->conf, &db), AC_OK);
	for (int i = 0; i < 2; i++) {
		syncs = ac_db_sqlite_syncs();
		assert_int_equal(ac_db_begin(db, AC_TXN_WRITE_LAZY), AC_OK);
		assert_int_equal(ac_db_stmt(db, 0, &ins, &st), AC_OK);
		ac_db_bind_str(st, 1, (struct ac_str){ "x", 1 });
		assert_int_equal(ac_db_step(st, &row), i == 0 ? AC_OK : AC_ECONFLICT);
		ac_db_done(st);
		if (i == 0)
			assert_int_equal(ac_db_commit(db), AC_OK);
		else
			ac_db_rollback(db);
		assert_true(ac_db_sqlite_syncs() == syncs);
		assert_int_equal(ac_db_begin(db, AC_TXN_READ), AC_OK);
		assert_int_equal(ac_db_stmt(db, 1, &sync, &st), AC_OK);
		assert_int_equal(ac_db_step(st, &row), AC_OK);
		assert_true(row);
		if (engine == AC_DB_SQLITE)
			assert_int_equal(ac_db_col_int(st, 0), 1);	/* NORMAL: the sync is group commit's */
		else
			assert_memory_equal(ac_db_col_str(st, 0).ptr, "on", 2);
		ac_db_done(st);
		ac_db_rollback(db);
	}
	/* A durable write after it syncs before its commit returns; one that changed nothing does not. */
	syncs = ac_db_sqlite_syncs();
	assert_int_equal(ac_db_begin(db, AC_TXN_WRITE), AC_OK);
	assert_int_equal(ac_db_stmt(db, 0, &ins, &st), AC_OK);
	ac_db_bind_str(st, 1, (struct ac_str){ "z", 1 });
	assert_int_equal(ac_db_step(st, &row), AC_OK);
	ac_db_done(st);
	assert_int_equal(ac_db_commit(db), AC_OK);
	if (engine == AC_DB_SQLITE)
		assert_true(ac_db_sqlite_syncs() == syncs + 1);
	syncs = ac_db_sqlite_syncs();
	assert_int_equal(ac_db_begin(db, AC_TXN_WRITE), AC_OK);
	assert_int_equal(ac_db_commit(db), AC_OK);
	assert_true(ac_db_sqlite_syncs() == syncs);
	ac_db_close(db);
	assert_int_equal(query_int(f, &(struct ac_sql){ "SELECT count(*) FROM ops_leases", NULL }, NULL), 2);
}

/* Group commit: threads committing at once each get their row on the disk before their commit returns
 * (counted), in fewer syncs than commits when they overlap; nothing is lost or doubled. */
#define GC_THREADS 8
#define GC_COMMITS 40

struct gc_arg {
	struct fixture *f;
	int n;
	int failed;
};

static void *
gc_writer(void *p)
{
	static const struct ac_sql ins = { "INSERT INTO ops_leases (name, holder, until) VALUES ($1, 'gc', 1)", NULL };
	struct gc_arg *a = p;
	struct ac_db *db = NULL;
	struct ac_stmt *st;
	bool row;

	if (ac_db_open(&a->f->conf, &db) != AC_OK) {
		a->failed = GC_COMMITS;
		ac_db_close(db);
		return NULL;
	}
	for (int i = 0; i < GC_COMMITS; i++) {
		char name[32];
		int len = snprintf(name, sizeof(name), "gc-%d-%d", a->n, i);

		if (ac_db_begin(db, AC_TXN_WRITE) != AC_OK || ac_db_stmt(db, 0, &ins, &st) != AC_OK) {
			ac_db_rollback(db);
			a->failed++;
			continue;
		}
		ac_db_bind_str(st, 1, (struct ac_str){ name, (size_t)len });
		if (ac_db_step(st, &row) != AC_OK) {
			ac_db_done(st);
			ac_db_rollback(db);
			a->failed++;
			continue;
		}
		ac_db_done(st);
		if (ac_db_commit(db) != AC_OK)
			a->failed++;
	}
	ac_db_close(db);
	return NULL;
}

static void
group_commit_of_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	pthread_t t[GC_THREADS];
	struct gc_arg a[GC_THREADS];
	uint64_t syncs = ac_db_sqlite_syncs();

	f->conf.busy_timeout_ms = 30000;
	for (int i = 0; i < GC_THREADS; i++) {
		a[i] = (struct gc_arg){ f, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, gc_writer, &a[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].failed, 0);
	}
	assert_int_equal(query_int(f, &(struct ac_sql){ "SELECT count(*) FROM ops_leases WHERE holder = 'gc'", NULL },
	    NULL), GC_THREADS * GC_COMMITS);
	syncs = ac_db_sqlite_syncs() - syncs;
	if (engine == AC_DB_SQLITE) {
		assert_true(syncs >= 1);
		assert_true(syncs <= GC_THREADS * GC_COMMITS);
		print_message("    %d commits, %llu syncs\n", GC_THREADS * GC_COMMITS, (unsigned long long)syncs);
	} else {
		assert_true(syncs == 0);
	}
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(create_get_round_trips_nul_and_ownership),
		BOTH(list_orders_by_updated_and_counts),
		BOTH(messages_page_both_ways),
		BOTH(delete_cascades_to_messages),
		BOTH(schema_newer_than_program_is_refused),
		BOTH(schema_version_is_recorded),
		BOTH(ping_and_unreadable_database),
		BOTH(pool_size_is_a_limit),
		BOTH(constraint_errors_are_mapped),
		BOTH(limits_rate_is_a_burst_then_steady),
		BOTH(limits_slots_and_tokens),
		BOTH(lazy_write_transaction),
		BOTH(group_commit_of_concurrent_writers),
	};
	int failed;

	engine = AC_DB_SQLITE;
	failed = cmocka_run_group_tests_name("repo on SQLite", tests, NULL, NULL);
	engine = AC_DB_PG;
	return failed | cmocka_run_group_tests_name("repo on PostgreSQL", tests, NULL, NULL);
}
