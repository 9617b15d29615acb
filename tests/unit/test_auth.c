/* common/auth.c: emails and names as stored, password hashes, tokens (issued, checked, refused). */
#include <stdlib.h>

#include "test.h"

#include "../../common/auth.h"
#include "../../common/config.h"

static struct ac_config cfg;

static int
setup(void **state)
{
	char msg[256];

	(void)state;
	unsetenv("JWT_PUBLIC_KEY_FILE");
	setenv("AUTH", "token", 1);
	setenv("JWT_SECRET", "unit-test-secret-0123456789abcdef0123", 1);
	if (ac_config_load(&cfg, "/nonexistent/.env", msg, sizeof(msg)) != AC_OK)
		return -1;
	return ac_auth_init(&cfg, msg, sizeof(msg)) == AC_OK ? 0 : -1;
}

static bool
email(const char *in, const char *want)
{
	char out[AC_EMAIL_MAX + 1];
	size_t len;
	bool ok = ac_auth_email((struct ac_str){ in, strlen(in) }, out, &len);

	if (want == NULL)
		return !ok;
	return ok && len == strlen(want) && memcmp(out, want, len) == 0;
}

static void
emails(void **state)
{
	char long_local[80], long_all[300];

	(void)state;
	assert_true(email("  Alice@Example.COM \t", "alice@example.com"));
	assert_true(email("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"));
	assert_true(email("x@a-b.io", "x@a-b.io"));
	assert_true(email("", NULL));
	assert_true(email("no-at", NULL));
	assert_true(email("@example.com", NULL));
	assert_true(email("a@", NULL));
	assert_true(email("a@b", NULL));
	assert_true(email("a@b.c", NULL));		/* a one-letter top-level label */
	assert_true(email("a@@b.com", NULL));
	assert_true(email("a b@c.com", NULL));
	assert_true(email(".a@c.com", NULL));
	assert_true(email("a.@c.com", NULL));
	assert_true(email("a..b@c.com", NULL));
	assert_true(email("a@-c.com", NULL));
	assert_true(email("a@c-.com", NULL));
	assert_true(email("a@c..com", NULL));
	assert_true(email("a@c_d.com", NULL));
	assert_true(email("\xc3\xa9@c.com", NULL));
	/* a NUL inside (found by fuzz_token: strchr matched the terminator) */
	{
		char out[AC_EMAIL_MAX + 1];
		size_t len;

		assert_false(ac_auth_email((struct ac_str){ "a\0b@c.com", 9 }, out, &len));
		assert_false(ac_auth_email((struct ac_str){ "ab@c.com\0", 9 }, out, &len));
	}
	memset(long_local, 'a', 65);
	memcpy(long_local + 65, "@c.com", 7);
	assert_true(email(long_local, NULL));
	memset(long_all, 'a', 250);
	memcpy(long_all + 250, "@c.com", 7);
	assert_true(email(long_all, NULL));
}

static void
names(void **state)
{
	char out[AC_EMAIL_MAX + 1];
	size_t len;

	(void)state;
	assert_true(ac_auth_name(AC_STR(" Bob "), out, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(out, "bob", 3);
	assert_false(ac_auth_name(AC_STR("  "), out, &len));
	assert_false(ac_auth_name(AC_STR("a\nb"), out, &len));
}

static void
hashes(void **state)
{
	char h[AC_AUTH_HASH_MAX];
	struct ac_str stored;

	(void)state;
	assert_int_equal(ac_auth_hash("correct horse", 13, h), AC_OK);
	assert_memory_equal(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
	stored = (struct ac_str){ h, strlen(h) };
	assert_true(ac_auth_verify(stored, "correct horse", 13));
	assert_false(ac_auth_verify(stored, "correct horsf", 13));
	assert_false(ac_auth_verify(stored, "correct hors", 12));
	assert_false(ac_auth_verify((struct ac_str){ NULL, 0 }, "correct horse", 13));	/* the dummy */
	assert_false(ac_auth_verify(AC_STR("not a hash"), "correct horse", 13));
}

static void
tokens(void **state)
{
	char t[AC_TOKEN_MAX];
	struct ac_claims c;
	size_t n;

	(void)state;
	assert_int_equal(ac_auth_token_issue(AC_STR("5b0c1f0e-8a3e-4f6b-9d1c-2f4e6a8b0c1d"), 7, t, sizeof(t)), AC_OK);
	n = strlen(t);
	assert_int_equal(ac_auth_token_check(t, n, &c), AC_OK);
	assert_string_equal(c.sub, "5b0c1f0e-8a3e-4f6b-9d1c-2f4e6a8b0c1d");
	assert_int_equal(c.ver, 7);
	assert_int_equal(c.exp - c.iat, 60 * 60);
	assert_false(c.outside);
	/* twice: the second from the thread's cache, the same claims */
	assert_int_equal(ac_auth_token_check(t, n, &c), AC_OK);
	assert_int_equal(c.ver, 7);
	/* any change to it: refused */
	for (size_t i = 0; i < n; i += 7) {
		char copy[AC_TOKEN_MAX];

		if (t[i] == '.')
			continue;
		memcpy(copy, t, n + 1);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		assert_int_equal(ac_auth_token_check(copy, n, &c), AC_EINVAL);
	}
	assert_int_equal(ac_auth_token_check(t, n - 1, &c), AC_EINVAL);
	assert_int_equal(ac_auth_token_check("", 0, &c), AC_EINVAL);
	assert_int_equal(ac_auth_token_check("a.b.c", 5, &c), AC_EINVAL);
	assert_int_equal(ac_auth_token_check("a b.c.d", 7, &c), AC_EINVAL);
	/* alg none: {"alg":"none"}.{"sub":"x","ver":0,"exp":9999999999}. */
	{
		const char *none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwidmVyIjowLCJleHAiOjk5OTk5OTk5OTl9.";

		assert_int_equal(ac_auth_token_check(none, strlen(none), &c), AC_EINVAL);
	}
	/* a subject too long for a token */
	{
		char sub[AC_SUB_MAX + 2];

		memset(sub, 'x', sizeof(sub) - 1);
		sub[sizeof(sub) - 1] = '\0';
		assert_int_equal(ac_auth_token_issue((struct ac_str){ sub, strlen(sub) }, 0, t, sizeof(t)), AC_EINVAL);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(emails),
		cmocka_unit_test(names),
		cmocka_unit_test(hashes),
		cmocka_unit_test(tokens),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
