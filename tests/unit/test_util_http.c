/* common/util.c and fcgi/http.c: identifiers, time, UTF-8, numbers, paths and query strings. */
#include <time.h>

#include "test.h"

#include "../../common/title.h"
#include "../../common/util.h"
#include "../../fcgi/http.h"

static void
uuid4_is_canonical_and_random(void **state)
{
	char a[AC_UUID_LEN + 1], b[AC_UUID_LEN + 1];

	(void)state;
	assert_int_equal(ac_uuid4(a), AC_OK);
	assert_int_equal(ac_uuid4(b), AC_OK);
	assert_true(ac_uuid_valid(a, strlen(a)));
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_string_not_equal(a, b);
	assert_false(ac_uuid_valid("not-a-uuid", 10));
	assert_false(ac_uuid_valid("4024741b-5acc-4b4e-b9c6-8b4c33252d7g", 36));
	assert_false(ac_uuid_valid("4024741b5acc-4b4e-b9c6-8b4c33252d76a", 36));
}

static void
time_parse_is_time_format_inverted(void **state)
{
	char out[AC_TIME_LEN + 1];
	int64_t t = 0;

	(void)state;
	assert_int_equal(ac_time_parse("2026-11-25T00:20:14.718833Z", 27, &t), AC_OK);
	assert_int_equal(t, 1795566014718833LL);
	assert_int_equal(ac_time_parse("2000-02-29T00:00:00Z", 20, &t), AC_OK);
	assert_int_equal(t, 951782400000000LL);
	assert_int_equal(ac_time_parse("2023-11-14T22:13:20.5Z", 22, &t), AC_OK);
	assert_int_equal(t, 1700000000500000LL);
	for (int64_t v = 0; v < 4102444800000000LL; v += 987654321987LL) {
		ac_time_format(v, out);
		assert_int_equal(ac_time_parse(out, AC_TIME_LEN, &t), AC_OK);
		assert_int_equal(t, v);
	}
	static const char *const bad[] = { "2026-11-25", "2026-11-25T00:20:14", "2026-11-25 00:20:14Z",
	    "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T00:00:00.Z",
	    "2026-11-25T00:00:00.1234567Z", "1969-12-31T23:59:59Z", "2026-11-25T00:00:00+01:00", "x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ac_time_parse(bad[i], strlen(bad[i]), &t), AC_EINVAL);
}

static void
time_format_is_iso8601_with_microseconds(void **state)
{
	char out[AC_TIME_LEN + 1];

	(void)state;
	ac_time_format(1795566014718833LL, out);
	assert_string_equal(out, "2026-11-25T00:20:14.718833Z");
	ac_time_format(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
	ac_time_format(951782400000001LL, out);		/* a leap day */
	assert_string_equal(out, "2000-02-29T00:00:00.000001Z");
	ac_time_format(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999999Z");
	/* every day of four centuries agrees with gmtime_r */
	for (int64_t d = -200000; d < 200000; d += 7) {
		time_t secs = (time_t)(d * 86400 + 45296);
		struct tm tm;
		char want[AC_TIME_LEN + 1];

		gmtime_r(&secs, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
		ac_time_format((int64_t)secs * 1000000, out);
		assert_string_equal(out, want);
	}
}

static void
utf8_count_counts_characters_and_refuses_malformed(void **state)
{
	size_t n;

	(void)state;
	assert_true(ac_utf8_count("h\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\0", 11, &n));
	assert_int_equal(n, 5);
	assert_false(ac_utf8_count("\xc0\xaf", 2, &n));		/* overlong */
	assert_false(ac_utf8_count("\xe0\x80\xaf", 3, &n));	/* overlong */
	assert_false(ac_utf8_count("\xed\xa0\x80", 3, &n));	/* surrogate */
	assert_false(ac_utf8_count("\xf4\x90\x80\x80", 4, &n));	/* past U+10FFFF */
	assert_false(ac_utf8_count("\xe4\xb8", 2, &n));		/* truncated */
	assert_false(ac_utf8_count("\x80", 1, &n));
}

static void
parse_i64_bounds(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(ac_parse_i64("42", 2, 0, 100, &v), AC_OK);
	assert_int_equal(v, 42);
	assert_int_equal(ac_parse_i64("-9223372036854775808", 20, INT64_MIN, INT64_MAX, &v), AC_OK);
	assert_true(v == INT64_MIN);
	assert_int_equal(ac_parse_i64("9223372036854775808", 19, INT64_MIN, INT64_MAX, &v), AC_ETOOBIG);
	assert_int_equal(ac_parse_i64("101", 3, 0, 100, &v), AC_ETOOBIG);
	assert_int_equal(ac_parse_i64("1.5", 3, 0, 100, &v), AC_EINVAL);
	assert_int_equal(ac_parse_i64("", 0, 0, 100, &v), AC_EINVAL);
	assert_int_equal(ac_parse_i64("-", 1, -5, 100, &v), AC_EINVAL);
	assert_int_equal(ac_parse_i64(" 1", 2, 0, 100, &v), AC_EINVAL);
}

static void
decode_percent_and_plus(void **state)
{
	char out[32];
	size_t n;

	(void)state;
	assert_int_equal(ac_http_decode("a%20b+c%2f%00", 13, true, out, &n), AC_OK);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "a b c/\0", 7);
	assert_int_equal(ac_http_decode("a+b", 3, false, out, &n), AC_OK);
	assert_memory_equal(out, "a+b", 3);
	assert_int_equal(ac_http_decode("%zz", 3, false, out, &n), AC_EINVAL);
	assert_int_equal(ac_http_decode("%4", 2, false, out, &n), AC_EINVAL);
}

static void
path_splits_into_decoded_segments(void **state)
{
	char scratch[64];
	struct ac_path p;
	const char *raw = "/chats/a%2Fb/messages";

	(void)state;
	assert_int_equal(ac_path_parse(raw, strlen(raw), scratch, &p), AC_OK);
	assert_int_equal(p.count, 3);
	assert_int_equal(p.seg[1].len, 3);
	assert_memory_equal(p.seg[1].ptr, "a/b", 3);
	assert_int_equal(ac_path_parse("/", 1, scratch, &p), AC_OK);
	assert_int_equal(p.count, 0);
	assert_int_equal(ac_path_parse("/chats/", 7, scratch, &p), AC_OK);
	assert_int_equal(p.count, 2);
	assert_int_equal(p.seg[1].len, 0);
	assert_int_equal(ac_path_parse("//x", 3, scratch, &p), AC_OK);
	assert_int_equal(p.count, 2);
	assert_int_equal(ac_path_parse("/a/b/c/d/e/f/g/h/i/j", 20, scratch, &p), AC_OK);
	assert_int_equal(p.count, 10);	/* counted, though only 8 are kept */
	assert_int_equal(ac_path_parse("/%zz", 4, scratch, &p), AC_EINVAL);
	assert_int_equal(ac_path_parse("/chats/a%00b", 12, scratch, &p), AC_EINVAL);
	assert_int_equal(ac_path_parse("x", 1, scratch, &p), AC_EINVAL);
}

static void
query_last_value_wins(void **state)
{
	char scratch[128];
	struct ac_query q;
	const char *raw = "user_id=a+b%26c&limit=5&&flag&limit=7&empty=";
	const struct ac_str *v;

	(void)state;
	assert_int_equal(ac_query_parse(raw, strlen(raw), scratch, &q), AC_OK);
	assert_int_equal(q.count, 5);
	v = ac_query_get(&q, "user_id");
	assert_int_equal(v->len, 5);
	assert_memory_equal(v->ptr, "a b&c", 5);
	v = ac_query_get(&q, "limit");
	assert_memory_equal(v->ptr, "7", 1);
	assert_int_equal(ac_query_get(&q, "flag")->len, 0);
	assert_int_equal(ac_query_get(&q, "empty")->len, 0);
	assert_null(ac_query_get(&q, "missing"));
	assert_int_equal(ac_query_parse("a=%zz", 5, scratch, &q), AC_EINVAL);
}

static void
query_too_many_params(void **state)
{
	char raw[AC_QUERY_MAX_PARAMS * 4 + 8], scratch[sizeof(raw)];
	struct ac_query q;
	size_t n = 0;

	(void)state;
	for (int i = 0; i < AC_QUERY_MAX_PARAMS; i++)
		n += (size_t)snprintf(raw + n, sizeof(raw) - n, "a=1&");
	assert_int_equal(ac_query_parse(raw, n, scratch, &q), AC_OK);
	n += (size_t)snprintf(raw + n, sizeof(raw) - n, "b=2");
	assert_int_equal(ac_query_parse(raw, n, scratch, &q), AC_ETOOBIG);
}

static void
content_type_json(void **state)
{
	(void)state;
	assert_true(ac_http_is_json("application/json"));
	assert_true(ac_http_is_json("Application/JSON; charset=utf-8"));
	assert_true(ac_http_is_json("application/merge-patch+json"));
	assert_false(ac_http_is_json("text/plain"));
	assert_false(ac_http_is_json("application/x-www-form-urlencoded"));
	assert_false(ac_http_is_json("application/jsonx"));
	assert_false(ac_http_is_json("multipart/form-data; boundary=x"));
}

/* common/title.c: what a model answers, made a title. */
static void
title_is_cleaned_and_bounded(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "Kyoto Trip Planning Guide", "Kyoto Trip Planning Guide" },
		{ "\"**Kyoto Trip Planning Guide.**\"", "Kyoto Trip Planning Guide" },
		{ "Title: Budget   Travel\tTips", "Budget Travel Tips" },
		{ "\n\n  ## Title:\n\"Rust Borrow Checker Basics\"\nmore text", "Rust Borrow Checker Basics" },
		{ "one two three four five six seven eight", "one two three four five six" },
		{ "\xe2\x80\x9c\xc3\x89t\xc3\xa9 \xc3\xa0 Paris\xe2\x80\x9d!", "\xc3\x89t\xc3\xa9 \xc3\xa0 Paris" },
		{ "Supercalifragilisticexpialidocious antidisestablishmentarianism "
		  "pneumonoultramicroscopicsilicovolcanoconiosis words", "Supercalifragilisticexpialidocious antidisestablishmentarianism" },
		{ "\"...\"", "" },
		{ "", "" },
		{ "   \n\t ", "" },
	};
	char out[AC_TITLE_BYTES], big[600];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = ac_title_clean(cases[i].in, strlen(cases[i].in), out);
		assert_string_equal(out, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
	/* one word longer than 80 characters: cut at 80 characters, never inside one */
	for (size_t i = 0; i < 100; i++)
		memcpy(big + 2 * i, "\xc3\xa9", 2);
	n = ac_title_clean(big, 200, out);
	assert_int_equal(n, 160);
	/* bytes that are not UTF-8 stay within the buffer */
	memset(big, 0x80, sizeof(big));
	n = ac_title_clean(big, sizeof(big), out);
	assert_true(n < AC_TITLE_BYTES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uuid4_is_canonical_and_random),
		cmocka_unit_test(time_format_is_iso8601_with_microseconds),
		cmocka_unit_test(time_parse_is_time_format_inverted),
		cmocka_unit_test(utf8_count_counts_characters_and_refuses_malformed),
		cmocka_unit_test(parse_i64_bounds),
		cmocka_unit_test(decode_percent_and_plus),
		cmocka_unit_test(path_splits_into_decoded_segments),
		cmocka_unit_test(query_last_value_wins),
		cmocka_unit_test(query_too_many_params),
		cmocka_unit_test(content_type_json),
		cmocka_unit_test(title_is_cleaned_and_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
