/* common/models.c, common/sse.c and the key scrubbing of common/provider.c. */
#include <stdio.h>

#include "test.h"

#include "../../common/models.h"
#include "../../common/provider.h"
#include "../../common/sse.h"

static void
registry_parses_aliases(void **state)
{
	static const char text[] = "# comment\n\n"
	    "fast  openai/gpt-oss-20b temperature=0.5 max_completion_tokens=100 context_window=1000\n"
	    "smart openai/gpt-oss-120b reasoning_effort=high   # trailing comment\n";
	struct ac_models ms;
	char msg[256];
	const struct ac_model *m;

	(void)state;
	assert_int_equal(ac_models_parse(&ms, text, strlen(text), "t", msg, sizeof(msg)), AC_OK);
	assert_int_equal(ms.count, 2);
	m = ac_models_find(&ms, "fast", 4);
	assert_non_null(m);
	assert_string_equal(m->id, "openai/gpt-oss-20b");
	assert_true(m->temperature > 0.49 && m->temperature < 0.51);
	assert_int_equal(m->max_completion_tokens, 100);
	assert_int_equal(m->context_window, 1000);
	assert_string_equal(m->reasoning_effort, "");
	m = ac_models_find(&ms, "smart", 5);
	assert_string_equal(m->reasoning_effort, "high");
	assert_int_equal(m->context_window, 131072);	/* the default */
	assert_null(ac_models_find(&ms, "gpt-4", 5));
}

static void
registry_errors_name_the_line(void **state)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "fast\n", "line 1" },
		{ "# ok\nfast m temperature=3\n", "line 2: temperature" },
		{ "fast m\nfast n\n", "line 2: alias 'fast' given twice" },
		{ "fast m colour=red\n", "unknown parameter 'colour'" },
		{ "fast m reasoning_effort=max\n", "reasoning_effort" },
		{ "fast m max_completion_tokens=5000 context_window=4000\n", "below context_window" },
		{ "fast m bare\n", "expected key=value" },
		{ "# nothing\n", "no model aliases" },
	};
	struct ac_models ms;
	char msg[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ac_models_parse(&ms, bad[i].text, strlen(bad[i].text), "f.conf", msg,
		    sizeof(msg)), AC_EINVAL);
		if (strstr(msg, bad[i].want) == NULL)
			fail_msg("'%s' lacks '%s'", msg, bad[i].want);
	}
}

static void
builtin_registry_is_the_shipped_one(void **state)
{
	struct ac_models ms;
	char msg[256];

	(void)state;
	assert_int_equal(ac_models_load(&ms, NULL, msg, sizeof(msg)), AC_OK);
	assert_string_equal(ms.m[0].alias, "fast");
	assert_string_equal(ms.m[0].id, "openai/gpt-oss-20b");
	assert_string_equal(ac_models_find(&ms, "smart", 5)->reasoning_effort, "high");
}

struct events {
	char all[512];
	size_t len;
	int n;
};

static enum ac_err
collect(void *arg, const char *data, size_t len)
{
	struct events *e = arg;

	e->len += (size_t)snprintf(e->all + e->len, sizeof(e->all) - e->len, "[%.*s]", (int)len, data);
	e->n++;
	return AC_OK;
}

static void
sse_events_across_any_split(void **state)
{
	static const char stream[] = ": comment\r\nevent: x\r\ndata: {\"a\":1}\r\n\r\n"
	    "data:two\ndata: lines\n\nid: 5\ndata: [DONE]\r\r";
	const char *want = "[{\"a\":1}][two\nlines][[DONE]]";

	(void)state;
	/* Fed whole, then in every split into two pieces: the same events. */
	for (size_t cut = 0; cut <= sizeof(stream) - 1; cut++) {
		struct ac_sse s;
		struct events e = { .len = 0 };

		ac_sse_init(&s, 1024);
		assert_int_equal(ac_sse_feed(&s, stream, cut, collect, &e), AC_OK);
		assert_int_equal(ac_sse_feed(&s, stream + cut, sizeof(stream) - 1 - cut, collect, &e), AC_OK);
		assert_int_equal(e.n, 3);
		assert_string_equal(e.all, want);
		ac_sse_free(&s);
	}
}

static void
sse_line_past_limit_fails(void **state)
{
	struct ac_sse s;
	struct events e = { .len = 0 };
	char line[100];

	(void)state;
	memset(line, 'x', sizeof(line));
	ac_sse_init(&s, 64);
	assert_int_equal(ac_sse_feed(&s, "data: ", 6, collect, &e), AC_OK);
	assert_int_equal(ac_sse_feed(&s, line, sizeof(line), collect, &e), AC_ETOOBIG);
	ac_sse_free(&s);
}

static void
scrub_removes_every_copy_of_the_key(void **state)
{
	char s[128] = "bad key gsk_secret123 and again gsk_secret123!";

	(void)state;
	ac_scrub(s, "gsk_secret123");
	assert_null(strstr(s, "gsk_secret123"));
	assert_string_equal(s, "bad key [redacted] and again [redacted]!");
	ac_scrub(s, "");
	assert_string_equal(s, "bad key [redacted] and again [redacted]!");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(registry_parses_aliases),
		cmocka_unit_test(registry_errors_name_the_line),
		cmocka_unit_test(builtin_registry_is_the_shipped_one),
		cmocka_unit_test(sse_events_across_any_split),
		cmocka_unit_test(sse_line_past_limit_fails),
		cmocka_unit_test(scrub_removes_every_copy_of_the_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
