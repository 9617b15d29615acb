/* common/config.c and common/valid.c: settings with .env, and FastAPI-style 422 entries. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#include "../../common/config.h"
#include "../../common/valid.h"

static const char *const settings[] = {
	"DATABASE_URL", "PORT", "WORKER_PROCESSES", "WORKER_THREADS", "MAX_BODY_BYTES",
	"DB_BUSY_TIMEOUT_MS", "CORS_ORIGINS", "FCGI_SOCKET", "FCGI_SOCKET_MODE", "FCGI_SOCKET_GROUP",
};

static int
clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		unsetenv(settings[i]);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
defaults(void **state)
{
	struct ac_config cfg;
	char msg[256];

	(void)state;
	assert_int_equal(ac_config_load(&cfg, "/nonexistent/.env", msg, sizeof(msg)), AC_OK);
	assert_string_equal(cfg.db_path, "./ai_chat.db");
	assert_int_equal(cfg.port, 8080);
	assert_int_equal(cfg.processes, 2);
	assert_int_equal(cfg.threads, 64);
	assert_int_equal(cfg.max_body, 1048576);
	assert_true(cfg.cors_any);
	assert_int_equal(cfg.socket_mode, 0660);
}

static void
dotenv_is_read_and_environment_wins(void **state)
{
	char path[] = "/tmp/ac-env-test.XXXXXX";
	struct ac_config cfg;
	char msg[256];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "# settings\nexport PORT=9001\nWORKER_THREADS = \"12\"\n"
	    "DATABASE_URL='sqlite:////var/x.db'\nCORS_ORIGINS=https://a.example, https://b.example # two\n"
	    "MAX_BODY_BYTES=2048\n");
	setenv("WORKER_THREADS", "3", 1);
	assert_int_equal(ac_config_load(&cfg, path, msg, sizeof(msg)), AC_OK);
	assert_int_equal(cfg.port, 9001);
	assert_int_equal(cfg.threads, 3);
	assert_string_equal(cfg.db_path, "/var/x.db");
	assert_int_equal(cfg.max_body, 2048);
	assert_false(cfg.cors_any);
	assert_int_equal(cfg.cors_count, 2);
	assert_string_equal(cfg.cors_origins[1], "https://b.example");
	unlink(path);
}

static void
bad_settings_are_named(void **state)
{
	static const struct {
		const char *name, *value;
	} bad[] = {
		{ "WORKER_THREADS", "0" }, { "WORKER_THREADS", "many" }, { "PORT", "70000" },
		{ "MAX_BODY_BYTES", "10" }, { "DATABASE_URL", "postgres:x" }, { "DATABASE_URL", "sqlite:///" },
		{ "FCGI_SOCKET_MODE", "0999" }, { "WORKER_PROCESSES", "65" }, { "DB_BUSY_TIMEOUT_MS", "-1" },
	};
	struct ac_config cfg;
	char msg[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i].name, bad[i].value, 1);
		assert_int_equal(ac_config_load(&cfg, "/nonexistent/.env", msg, sizeof(msg)), AC_EINVAL);
		assert_non_null(strstr(msg, bad[i].name));
		unsetenv(bad[i].name);
	}
}

static void
values_too_long_are_named_not_cut(void **state)
{
	char path[] = "/tmp/ac-env-long.XXXXXX";
	char text[6000];
	struct ac_config cfg;
	char msg[256];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	/* A system prompt one byte past its 4095 is refused from .env and from the environment alike. */
	memset(text, 'p', sizeof(text));
	memcpy(text, "SYSTEM_PROMPT=", 14);
	text[14 + 4096] = '\n';
	text[14 + 4097] = '\0';
	write_file(path, text);
	assert_int_equal(ac_config_load(&cfg, path, msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "SYSTEM_PROMPT"));
	text[14 + 4095] = '\n';
	text[14 + 4096] = '\0';
	write_file(path, text);
	assert_int_equal(ac_config_load(&cfg, path, msg, sizeof(msg)), AC_OK);
	assert_int_equal(strlen(cfg.system_prompt), 4095);
	text[14 + 4096] = '\0';
	text[14 + 4095] = 'p';
	setenv("SYSTEM_PROMPT", text + 14, 1);
	assert_int_equal(ac_config_load(&cfg, "/nonexistent/.env", msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "SYSTEM_PROMPT"));
	unsetenv("SYSTEM_PROMPT");
	unlink(path);
}

static void
verrs_format_is_fastapi(void **state)
{
	struct ac_verrs v;
	struct ac_buf out;
	struct ac_json_error jerr = { "Unexpected end of input", 7 };

	(void)state;
	ac_verrs_init(&v);
	ac_buf_init(&out, 4096);
	ac_verrs_add(&v, "body", "user_id", "field required", "value_error.missing", false, 0);
	ac_verrs_add(&v, "query", "limit", "ensure this value is less than or equal to 100",
	    "value_error.number.not_le", true, 100);
	ac_verrs_add_decode(&v, &jerr);
	ac_verrs_write(&v, &out);
	assert_buf_str(&out, "{\"detail\":["
	    "{\"loc\":[\"body\",\"user_id\"],\"msg\":\"field required\",\"type\":\"value_error.missing\"},"
	    "{\"loc\":[\"query\",\"limit\"],\"msg\":\"ensure this value is less than or equal to 100\","
	    "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":100}},"
	    "{\"loc\":[\"body\",7],\"msg\":\"Unexpected end of input\",\"type\":\"value_error.jsondecode\"}]}");
	ac_buf_free(&out);
	ac_verrs_free(&v);
}

static void
valid_int_and_bool(void **state)
{
	struct ac_verrs v;
	int64_t n = -1;
	bool b = false;
	struct ac_str s;

	(void)state;
	ac_verrs_init(&v);
	assert_true(ac_valid_int(&v, "limit", NULL, 50, 1, 100, &n));
	assert_int_equal(n, 50);
	s = (struct ac_str){ "100", 3 };
	assert_true(ac_valid_int(&v, "limit", &s, 50, 1, 100, &n));
	assert_int_equal(n, 100);
	assert_int_equal(v.count, 0);
	s = (struct ac_str){ "99999999999999999999", 20 };
	assert_false(ac_valid_int(&v, "limit", &s, 50, 1, 100, &n));
	assert_non_null(strstr(v.list.data, "not_le"));
	s = (struct ac_str){ "-99999999999999999999", 21 };
	assert_false(ac_valid_int(&v, "limit", &s, 50, 1, 100, &n));
	assert_non_null(strstr(v.list.data, "not_ge"));
	s = (struct ac_str){ "ten", 3 };
	assert_false(ac_valid_int(&v, "limit", &s, 50, 1, 100, &n));
	assert_non_null(strstr(v.list.data, "type_error.integer"));
	s = (struct ac_str){ "Yes", 3 };
	assert_true(ac_valid_bool(&v, "newest", &s, false, &b));
	assert_true(b);
	s = (struct ac_str){ "maybe", 5 };
	assert_false(ac_valid_bool(&v, "newest", &s, false, &b));
	assert_int_equal(v.count, 4);
	ac_verrs_free(&v);
}

static void
valid_body_strings(void **state)
{
	static const struct ac_strspec spec = { "title", true, false, 1, 3 };
	struct ac_verrs v;
	struct ac_str out;
	bool present;
	struct json_object *o = json_tokener_parse(
	    "{\"a\": \"\xc3\xa9\xc3\xa9\xc3\xa9\", \"b\": \"abcd\", \"c\": null, \"d\": 5, \"e\": \"\"}");
	struct ac_strspec s = spec;

	(void)state;
	ac_verrs_init(&v);
	s.name = "a";
	assert_true(ac_valid_body_str(&v, o, &s, &out, &present));	/* 3 characters, 6 bytes */
	assert_int_equal(out.len, 6);
	s.name = "b";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	s.name = "c";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	s.name = "d";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	s.name = "e";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	s.name = "missing";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	assert_int_equal(v.count, 5);
	assert_non_null(strstr(v.list.data, "\"loc\":[\"body\",\"b\"],\"msg\":\"ensure this value has at most 3 characters\""));
	assert_non_null(strstr(v.list.data, "type_error.none.not_allowed"));
	assert_non_null(strstr(v.list.data, "\"loc\":[\"body\",\"d\"],\"msg\":\"str type expected\""));
	assert_non_null(strstr(v.list.data, "value_error.any_str.min_length"));
	assert_non_null(strstr(v.list.data, "\"loc\":[\"body\",\"missing\"],\"msg\":\"field required\""));
	/* nullable and optional: absent and null are fine, with present telling them apart */
	s.required = false;
	s.nullable = true;
	s.name = "c";
	assert_false(ac_valid_body_str(&v, o, &s, &out, &present));
	assert_false(present);
	assert_int_equal(v.count, 5);
	json_object_put(o);
	ac_verrs_free(&v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(defaults, clear_env),
		cmocka_unit_test_setup(dotenv_is_read_and_environment_wins, clear_env),
		cmocka_unit_test_setup(bad_settings_are_named, clear_env),
		cmocka_unit_test_setup(values_too_long_are_named_not_cut, clear_env),
		cmocka_unit_test(verrs_format_is_fastapi),
		cmocka_unit_test(valid_int_and_bool),
		cmocka_unit_test(valid_body_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
