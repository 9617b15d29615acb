/* common/repo_sqlite.c on a real SQLite file: migration, ownership, ordering, paging, cascade, NUL. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

#include "test.h"

#include "../../common/repo.h"

struct fixture {
	char dir[64];
	char path[96];
	struct ac_repo *repo;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char msg[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/ac-repo-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	assert_int_equal(ac_repo_migrate(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = f->path, .busy_timeout_ms = 1000 }, msg, sizeof(msg)), AC_OK);
	/* a second run finds the schema current and changes nothing */
	assert_int_equal(ac_repo_migrate(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = f->path, .busy_timeout_ms = 1000 }, msg, sizeof(msg)), AC_OK);
	assert_int_equal(ac_repo_open(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = f->path, .busy_timeout_ms = 1000 }, &f->repo), AC_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	ac_repo_close(f->repo);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
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
	sqlite3 *db;
	char sql[512];

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	for (int i = 0; i < n; i++) {
		/* a single path: each message follows the one before */
		snprintf(sql, sizeof(sql), "INSERT INTO messages (chat_id, parent_id, role, content, created_at) "
		    "VALUES ('%s', (SELECT max(id) FROM messages WHERE chat_id = '%s'), '%s', 'm%d', %d); "
		    "UPDATE chats SET message_count = message_count + 1 WHERE id = '%s'", chat_id, chat_id,
		    i % 2 ? "assistant" : "user", i, i, chat_id);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_close(db);
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
	struct fixture *f = *state;
	struct seen chat = { .calls = 0 };
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(ac_repo_chat_create(f->repo, str("del"), str("d"), keep_chat, &chat), AC_OK);
	add_messages(f, chat.id, 3);
	assert_int_equal(ac_repo_chat_delete(f->repo, str(chat.id), str("del")), AC_OK);
	assert_int_equal(ac_repo_chat_delete(f->repo, str(chat.id), str("del")), AC_ENOTFOUND);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE chat_id = ?", -1, &st,
	    NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, chat.id, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void
schema_newer_than_program_is_refused(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	char msg[256];

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(ac_repo_migrate(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = f->path, .busy_timeout_ms = 1000 }, msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "999"));
}

static void
ping_and_unreadable_database(void **state)
{
	struct fixture *f = *state;
	struct ac_repo *r = NULL;
	char msg[256];

	assert_int_equal(ac_repo_ping(f->repo), AC_OK);
	assert_int_equal(ac_repo_open(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = "/nonexistent-dir/x.db", .busy_timeout_ms = 100 }, &r), AC_EDB);
	assert_null(r);
	assert_int_equal(ac_repo_migrate(&(struct ac_db_conf){ .kind = AC_DB_SQLITE, .target = "/nonexistent-dir/x.db", .busy_timeout_ms = 100 }, msg, sizeof(msg)), AC_EDB);
	assert_non_null(strstr(msg, "/nonexistent-dir/x.db"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(create_get_round_trips_nul_and_ownership, setup, teardown),
		cmocka_unit_test_setup_teardown(list_orders_by_updated_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(messages_page_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(delete_cascades_to_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(schema_newer_than_program_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(ping_and_unreadable_database, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
