/* common/buf.c and common/json.c: bounded buffers, JSON escaping and strict parsing. */
#include "test.h"

#include "../../common/json.h"

static void
buf_grows_and_keeps_nul(void **state)
{
	struct ac_buf b;

	(void)state;
	ac_buf_init(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		ac_buf_adds(&b, "abc");
	ac_buf_addi(&b, -9223372036854775807LL - 1);
	assert_int_equal(ac_buf_err(&b), AC_OK);
	assert_int_equal(b.len, 3000 + 20);
	assert_string_equal(b.data + 3000, "-9223372036854775808");
	ac_buf_free(&b);
}

static void
buf_past_max_is_sticky_error(void **state)
{
	struct ac_buf b;

	(void)state;
	ac_buf_init(&b, 8);
	ac_buf_adds(&b, "12345678");
	assert_int_equal(ac_buf_err(&b), AC_OK);
	ac_buf_addc(&b, '9');
	assert_int_equal(ac_buf_err(&b), AC_ETOOBIG);
	ac_buf_adds(&b, "more");	/* ignored after the first error */
	assert_int_equal(b.len, 8);
	ac_buf_free(&b);
}

struct sink_seen {
	char data[64];
	size_t len;
	int calls;
};

static enum ac_err
sink(void *arg, const char *data, size_t len)
{
	struct sink_seen *s = arg;

	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->calls++;
	return AC_OK;
}

static void
buf_sink_streams_past_max(void **state)
{
	struct ac_buf b;
	struct sink_seen seen = { .len = 0 };

	(void)state;
	ac_buf_init(&b, 4);
	ac_buf_set_sink(&b, sink, &seen);
	ac_buf_adds(&b, "abc");
	ac_buf_adds(&b, "def");		/* passes 4: "abc" goes to the sink */
	ac_buf_adds(&b, "ghijklmnop");	/* larger than the window: through whole */
	ac_buf_flush(&b);
	assert_int_equal(ac_buf_err(&b), AC_OK);
	assert_int_equal(seen.len, 16);
	assert_memory_equal(seen.data, "abcdefghijklmnop", 16);
	assert_int_equal(b.len, 0);
	ac_buf_free(&b);
}

static void
json_escapes_controls_quotes_and_nul(void **state)
{
	struct ac_buf b;

	(void)state;
	ac_buf_init(&b, 1024);
	ac_json_str(&b, "a\"b\\c\n\t\x01\0z/", 11);
	assert_buf_str(&b, "\"a\\\"b\\\\c\\n\\t\\u0001\\u0000z/\"");
	ac_buf_free(&b);
}

static void
json_keeps_utf8_and_replaces_invalid_bytes(void **state)
{
	struct ac_buf b;

	(void)state;
	ac_buf_init(&b, 1024);
	/* é, 😀, then a lone continuation byte, an overlong '/', a surrogate, a truncated sequence */
	ac_json_str(&b, "\xc3\xa9\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82", 18);
	assert_buf_str(&b, "\"\xc3\xa9\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\"");
	ac_buf_free(&b);
}

/* The escaping of one ASCII character, written out the long way (out has 8 bytes). */
static void
reference_escape(char c, char *out)
{
	const char *e = NULL;

	switch (c) {
	case '"': e = "\\\""; break;
	case '\\': e = "\\\\"; break;
	case '\b': e = "\\b"; break;
	case '\f': e = "\\f"; break;
	case '\n': e = "\\n"; break;
	case '\r': e = "\\r"; break;
	case '\t': e = "\\t"; break;
	}
	if (e != NULL)
		snprintf(out, 8, "%s", e);
	else if ((unsigned char)c < 0x20 || c == 0x7f)
		snprintf(out, 8, "\\u%04x", (unsigned char)c);
	else
		snprintf(out, 8, "%c", c);
}

static void
json_escape_finds_specials_at_every_position(void **state)
{
	struct ac_buf b;
	char in[24], want[64], esc[8];

	(void)state;
	ac_buf_init(&b, 1024);
	for (int c = 0; c < 0x80; c++) {
		for (int pos = 0; pos < 24; pos++) {
			memset(in, 'a', sizeof(in));
			in[pos] = (char)c;
			reference_escape((char)c, esc);
			snprintf(want, sizeof(want), "%.*s%s%.*s", pos, in, esc, 23 - pos, in + pos + 1);
			b.len = 0;
			ac_json_escape(&b, in, sizeof(in));
			assert_int_equal(b.len, strlen(want));
			assert_memory_equal(b.data, want, b.len);
		}
	}
	ac_buf_free(&b);
}

static struct json_object *
parse_ok(const char *text)
{
	struct json_object *o = NULL;
	struct ac_json_error err;

	assert_int_equal(ac_json_parse(text, strlen(text), &o, &err), AC_OK);
	assert_non_null(o);
	return o;
}

static void
parse_fails_at(const char *text, size_t len, size_t offset)
{
	struct json_object *o = NULL;
	struct ac_json_error err;

	assert_int_equal(ac_json_parse(text, len, &o, &err), AC_EINVAL);
	assert_null(o);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(err.offset, offset);
}

static void
json_parse_accepts_documents(void **state)
{
	struct json_object *o;
	struct ac_str s;

	(void)state;
	o = parse_ok("{\"a\": \"x\\u0000y\"}  \n");
	s = ac_json_get_str(json_object_object_get(o, "a"));
	assert_int_equal(s.len, 3);
	assert_memory_equal(s.ptr, "x\0y", 3);
	json_object_put(o);
	json_object_put(parse_ok("123"));
	json_object_put(parse_ok("[]"));
	/* duplicate keys: the last wins */
	o = parse_ok("{\"k\": \"1\", \"k\": \"2\"}");
	assert_string_equal(json_object_get_string(json_object_object_get(o, "k")), "2");
	json_object_put(o);
}

static void
json_parse_refuses_bad_input(void **state)
{
	char deep[200];

	(void)state;
	parse_fails_at("{\"a\": 1} x", 10, 9);		/* trailing data */
	parse_fails_at("{\"a\": ", 6, 6);		/* truncated */
	parse_fails_at("{\"a\": 1,}", 9, 8);		/* strict: no trailing comma */
	parse_fails_at("{\"a\": \"\xff\"}", 10, 7);	/* invalid UTF-8 */
	parse_fails_at("{\"a\"\0: 1}", 9, 4);		/* a raw NUL */
	parse_fails_at("{\"a\": \"x\ny\"}", 12, 8);	/* a raw newline inside a string */
	parse_fails_at("{\"a\": \"\xc0\xaf\"}", 11, 7);	/* overlong */
	parse_fails_at("{\"a\": \"\xed\xa0\x80\"}", 12, 7);	/* a surrogate */
	parse_fails_at("", 0, 0);
	/* deeper than AC_JSON_MAX_DEPTH */
	memset(deep, '[', AC_JSON_MAX_DEPTH + 1);
	deep[AC_JSON_MAX_DEPTH + 1] = '\0';
	{
		struct json_object *o = NULL;
		struct ac_json_error err;

		assert_int_equal(ac_json_parse(deep, strlen(deep), &o, &err), AC_EINVAL);
	}
	memset(deep, '[', AC_JSON_MAX_DEPTH);
	memset(deep + AC_JSON_MAX_DEPTH, ']', AC_JSON_MAX_DEPTH);
	deep[2 * AC_JSON_MAX_DEPTH] = '\0';
	json_object_put(parse_ok(deep));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_grows_and_keeps_nul),
		cmocka_unit_test(buf_past_max_is_sticky_error),
		cmocka_unit_test(buf_sink_streams_past_max),
		cmocka_unit_test(json_escapes_controls_quotes_and_nul),
		cmocka_unit_test(json_keeps_utf8_and_replaces_invalid_bytes),
		cmocka_unit_test(json_escape_finds_specials_at_every_position),
		cmocka_unit_test(json_parse_accepts_documents),
		cmocka_unit_test(json_parse_refuses_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
