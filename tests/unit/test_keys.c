/*
 * Personal API keys (common/repo_keys.c): the keys' form and hash, and their rows over both engines
 * (made, listed, revoked only by their account, found by hash with their account, last use noted,
 * gone with the account).  The PostgreSQL half runs on AC_TEST_PG_URL (tests/run.sh), else skipped.
 */
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "test.h"

#include "../../common/db.h"
#include "../../common/repo.h"
#include "../../common/repo_keys.h"
#include "../../common/repo_users.h"

static enum ac_db_kind engine;

struct fixture {
	char dir[64];
	char path[96];
	struct ac_db_conf conf;
	struct ac_repo *repo;
};

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
		static const struct ac_sql steps[] = { { NULL, "DROP SCHEMA public CASCADE" },
		    { NULL, "CREATE SCHEMA public" } };
		const char *url = getenv("AC_TEST_PG_URL");
		struct ac_db *db = NULL;
		struct ac_stmt *st;
		bool row;

		if (url == NULL || *url == '\0') {
			free(f);
			skip();
		}
		f->conf.target = url;
		assert_int_equal(ac_db_open(&f->conf, &db), AC_OK);
		for (int i = 0; i < 2; i++) {	/* the schema made anew for every test */
			assert_int_equal(ac_db_stmt(db, i, &steps[i], &st), AC_OK);
			assert_int_equal(ac_db_step(st, &row), AC_OK);
			ac_db_done(st);
		}
		ac_db_close(db);
	} else {
		snprintf(f->dir, sizeof(f->dir), "/tmp/ac-keys-test.XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
		f->conf.target = f->path;
	}
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

static void
keys_and_hashes(void **state)
{
	char a[AC_KEY_LEN + 1], b[AC_KEY_LEN + 1], h[AC_KEY_HASH_LEN + 1];

	(void)state;
	ac_key_new(a);
	ac_key_new(b);
	assert_int_equal(strlen(a), AC_KEY_LEN);
	assert_true(ac_key_valid(a, AC_KEY_LEN) && ac_key_valid(b, AC_KEY_LEN));
	assert_memory_not_equal(a, b, AC_KEY_LEN);
	assert_true(ac_key_like("sk-", 3) && !ac_key_like("sk", 2) && !ac_key_like("eyJhbGci", 8));
	assert_false(ac_key_valid(a, AC_KEY_LEN - 1));
	a[20] = '+';	/* standard base64, not base64url */
	assert_false(ac_key_valid(a, AC_KEY_LEN));
	a[20] = 'x';
	a[0] = 'S';
	assert_false(ac_key_valid(a, AC_KEY_LEN));
	/* BLAKE2b-256 (RFC 7693's function, 32-byte output, no key) */
	ac_key_hash("abc", 3, h);
	assert_string_equal(h, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

struct user_seen {
	char id[40];
	int calls;
};

static enum ac_err
keep_user(void *arg, const struct ac_user *u)
{
	struct user_seen *s = arg;

	snprintf(s->id, sizeof(s->id), "%.*s", (int)u->id.len, u->id.ptr);
	s->calls++;
	return AC_OK;
}

struct key_seen {
	char id[8][40];
	char name[8][32];
	int64_t last_used[8];
	int n;
};

static enum ac_err
keep_key(void *arg, const struct ac_api_key *k)
{
	struct key_seen *s = arg;

	if (s->n >= 8)
		return AC_ETOOBIG;
	snprintf(s->id[s->n], sizeof(s->id[0]), "%.*s", (int)k->id.len, k->id.ptr);
	snprintf(s->name[s->n], sizeof(s->name[0]), "%.*s", (int)k->name.len, k->name.ptr);
	s->last_used[s->n] = k->last_used_at;
	s->n++;
	return AC_OK;
}

static struct ac_str
S(const char *s)
{
	return (struct ac_str){ s, strlen(s) };
}

static void
rows_by_account(void **state)
{
	struct fixture *f = *state;
	struct user_seen alice = { "", 0 }, bob = { "", 0 }, found = { "", 0 };
	struct key_seen made = { .n = 0 }, listed = { .n = 0 };
	char key[AC_KEY_LEN + 1], hash[AC_KEY_HASH_LEN + 1], other[AC_KEY_HASH_LEN + 1];

	assert_int_equal(ac_repo_user_create(f->repo, S("alice@example.com"), S("$argon2id$x"), false, keep_user,
	    &alice), AC_OK);
	assert_int_equal(ac_repo_user_create(f->repo, S("bob@example.com"), S("$argon2id$x"), false, keep_user,
	    &bob), AC_OK);
	ac_key_new(key);
	ac_key_hash(key, AC_KEY_LEN, hash);
	assert_int_equal(ac_repo_key_create(f->repo, S(alice.id), (struct ac_str){ "laptop\0nul", 10 },
	    (struct ac_str){ key, AC_KEY_PREFIX_LEN }, S(hash), keep_key, &made), AC_OK);
	assert_int_equal(made.n, 1);
	assert_int_equal(made.last_used[0], 0);
	/* an account that is not there gets no key; a hash is never stored twice */
	ac_key_hash("sk-other", 8, other);
	assert_int_equal(ac_repo_key_create(f->repo, S("no-such-user"), S("x"), S("sk-AAAAAAAA"), S(other), NULL,
	    NULL), AC_ENOTFOUND);
	assert_int_equal(ac_repo_key_create(f->repo, S(bob.id), S("x"), S("sk-AAAAAAAA"), S(hash), NULL, NULL),
	    AC_ECONFLICT);
	/* found by its hash, with its account; the use noted */
	assert_int_equal(ac_repo_key_user(f->repo, S(hash), keep_user, &found), AC_OK);
	assert_int_equal(found.calls, 1);
	assert_string_equal(found.id, alice.id);
	assert_int_equal(ac_repo_key_user(f->repo, S(other), keep_user, &found), AC_ENOTFOUND);
	assert_int_equal(ac_repo_key_list(f->repo, S(alice.id), keep_key, &listed), AC_OK);
	assert_int_equal(listed.n, 1);
	assert_string_equal(listed.id[0], made.id[0]);
	assert_true(listed.last_used[0] > 0);
	assert_memory_equal(listed.name[0], "laptop", 7);
	listed.n = 0;
	assert_int_equal(ac_repo_key_list(f->repo, S(bob.id), keep_key, &listed), AC_OK);
	assert_int_equal(listed.n, 0);
	/* only its account revokes it */
	assert_int_equal(ac_repo_key_delete(f->repo, S(bob.id), S(made.id[0])), AC_ENOTFOUND);
	assert_int_equal(ac_repo_key_user(f->repo, S(hash), NULL, NULL), AC_OK);
	assert_int_equal(ac_repo_key_delete(f->repo, S(alice.id), S(made.id[0])), AC_OK);
	assert_int_equal(ac_repo_key_user(f->repo, S(hash), NULL, NULL), AC_ENOTFOUND);
	assert_int_equal(ac_repo_key_delete(f->repo, S(alice.id), S(made.id[0])), AC_ENOTFOUND);
	/* deleting the account deletes its keys */
	ac_key_new(key);
	ac_key_hash(key, AC_KEY_LEN, hash);
	assert_int_equal(ac_repo_key_create(f->repo, S(bob.id), S("ci"), (struct ac_str){ key, AC_KEY_PREFIX_LEN },
	    S(hash), NULL, NULL), AC_OK);
	assert_int_equal(ac_repo_key_user(f->repo, S(hash), NULL, NULL), AC_OK);
	assert_int_equal(ac_repo_user_delete(f->repo, S(bob.id)), AC_OK);
	assert_int_equal(ac_repo_key_user(f->repo, S(hash), NULL, NULL), AC_ENOTFOUND);
}

static void
at_most_a_hundred(void **state)
{
	struct fixture *f = *state;
	struct user_seen u = { "", 0 };
	char key[AC_KEY_LEN + 1], hash[AC_KEY_HASH_LEN + 1];

	assert_int_equal(ac_repo_user_create(f->repo, S("many@example.com"), S("$argon2id$x"), false, keep_user,
	    &u), AC_OK);
	for (int i = 0; i <= AC_KEYS_PER_USER_MAX; i++) {
		ac_key_new(key);
		ac_key_hash(key, AC_KEY_LEN, hash);
		assert_int_equal(ac_repo_key_create(f->repo, S(u.id), S("k"), (struct ac_str){ key, AC_KEY_PREFIX_LEN },
		    S(hash), NULL, NULL), i < AC_KEYS_PER_USER_MAX ? AC_OK : AC_ETOOBIG);
	}
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(keys_and_hashes),
	};
	const struct CMUnitTest tests[] = {
		BOTH(rows_by_account),
		BOTH(at_most_a_hundred),
	};
	int failed;

	if (sodium_init() < 0)
		return 1;
	failed = cmocka_run_group_tests_name("api keys", pure, NULL, NULL);
	engine = AC_DB_SQLITE;
	failed |= cmocka_run_group_tests_name("api keys on SQLite", tests, NULL, NULL);
	engine = AC_DB_PG;
	return failed | cmocka_run_group_tests_name("api keys on PostgreSQL", tests, NULL, NULL);
}
