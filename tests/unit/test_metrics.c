/* common/metrics.c: METRICS_ALLOW, counting across a fork, and the exposition's shape. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#include "../../common/config.h"
#include "../../common/metrics.h"
#include "../../common/provider.h"

static struct ac_config cfg;
static const char *const routes[] = { "/health", "/chats/{chat_id}" };

static void
allow_lists(void **state)
{
	char msg[256];

	(void)state;
	assert_int_equal(ac_metrics_allow_check("127.0.0.0/8,::1", msg, sizeof(msg)), AC_OK);
	assert_int_equal(ac_metrics_allow_check(" 10.0.0.7 , 2001:db8::/32,", msg, sizeof(msg)), AC_OK);
	assert_int_equal(ac_metrics_allow_check("", msg, sizeof(msg)), AC_OK);
	assert_int_equal(ac_metrics_allow_check("10.0.0.0/33", msg, sizeof(msg)), AC_EINVAL);
	assert_non_null(strstr(msg, "METRICS_ALLOW: '10.0.0.0/33'"));
	assert_int_equal(ac_metrics_allow_check("localhost", msg, sizeof(msg)), AC_EINVAL);
	assert_int_equal(ac_metrics_allow_check("::1/129", msg, sizeof(msg)), AC_EINVAL);
	assert_int_equal(ac_metrics_allow_check("10.0.0.0/x", msg, sizeof(msg)), AC_EINVAL);
}

static int
setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.metrics = 1;
	snprintf(cfg.metrics_allow, sizeof(cfg.metrics_allow), "127.0.0.0/8,::1,10.1.0.0/16,2001:db8::/32");
	cfg.models.count = 1;
	snprintf(cfg.models.m[0].alias, sizeof(cfg.models.m[0].alias), "fast");
	snprintf(cfg.models.m[0].id, sizeof(cfg.models.m[0].id), "openai/gpt-oss-20b");
	return ac_metrics_init(&cfg, routes, 2) == AC_OK ? 0 : -1;
}

static void
allowed_addresses(void **state)
{
	(void)state;
	assert_true(ac_metrics_on());
	assert_true(ac_metrics_allowed("127.0.0.1"));
	assert_true(ac_metrics_allowed("127.255.0.9"));
	assert_true(ac_metrics_allowed("::1"));
	assert_true(ac_metrics_allowed("::ffff:127.0.0.1"));
	assert_true(ac_metrics_allowed("10.1.200.3"));
	assert_true(ac_metrics_allowed("2001:db8:1::5"));
	assert_false(ac_metrics_allowed("10.2.0.1"));
	assert_false(ac_metrics_allowed("128.0.0.1"));
	assert_false(ac_metrics_allowed("2001:db9::1"));
	assert_false(ac_metrics_allowed("not an address"));
	assert_false(ac_metrics_allowed(NULL));
}

/* A child's counts are the parent's too: the counters are shared, not copied by the fork. */
static void
counts_survive_a_fork(void **state)
{
	struct ac_buf b;
	pid_t pid;
	int ws;

	(void)state;
	ac_metrics_http("/health", "GET", 200, 3000);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 4; i++)
			ac_metrics_http("/health", "GET", 200, 30000);
		ac_metrics_http(NULL, "BREW", 418, 1);
		ac_metrics_provider(0, AC_LLM_OK, 1500000, 200000, 10, 5);
		ac_metrics_provider(7, AC_LLM_RATE_LIMITED, 100, -1, 0, 0);
		ac_metrics_retry();
		ac_metrics_db_error();
		ac_metrics_rate_limited(AC_LIMIT_PROVIDER);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	ac_buf_init(&b, 1 << 20);
	ac_metrics_write(&b);
	assert_int_equal(ac_buf_err(&b), AC_OK);
	assert_non_null(strstr(b.data, "http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 5\n"));
	assert_non_null(strstr(b.data, "http_requests_total{route=\"other\",method=\"other\",status=\"other\"} 1\n"));
	/* Cumulative buckets: 1 at or under 5 ms, all 5 by 50 ms, +Inf the count. */
	assert_non_null(strstr(b.data, "http_request_duration_seconds_bucket{route=\"/health\",le=\"0.005000\"} 1\n"));
	assert_non_null(strstr(b.data, "http_request_duration_seconds_bucket{route=\"/health\",le=\"0.050000\"} 5\n"));
	assert_non_null(strstr(b.data, "http_request_duration_seconds_bucket{route=\"/health\",le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(b.data, "http_request_duration_seconds_sum{route=\"/health\"} 0.123000\n"));
	assert_non_null(strstr(b.data, "http_request_duration_seconds_count{route=\"/health\"} 5\n"));
	assert_non_null(strstr(b.data, "provider_requests_total{model=\"fast\",outcome=\"ok\"} 1\n"));
	assert_non_null(strstr(b.data, "provider_requests_total{model=\"other\",outcome=\"rate_limited\"} 1\n"));
	assert_non_null(strstr(b.data, "provider_time_to_first_token_seconds_count{model=\"fast\"} 1\n"));
	assert_null(strstr(b.data, "provider_time_to_first_token_seconds_count{model=\"other\"}"));
	assert_non_null(strstr(b.data, "llm_tokens_total{model=\"fast\",kind=\"prompt\"} 10\n"));
	assert_non_null(strstr(b.data, "llm_tokens_total{model=\"fast\",kind=\"completion\"} 5\n"));
	assert_non_null(strstr(b.data, "provider_retries_total 1\n"));
	assert_non_null(strstr(b.data, "db_errors_total 1\n"));
	assert_non_null(strstr(b.data, "rate_limited_total{limit=\"provider\"} 1\n"));
	assert_non_null(strstr(b.data, "auth_failures_total{reason=\"expired\"} 0\n"));
	assert_non_null(strstr(b.data, "# TYPE chats_in_flight gauge\nchats_in_flight 0\n"));
	/* No route the test never answered. */
	assert_null(strstr(b.data, "route=\"/chats/{chat_id}\""));
	ac_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(allow_lists),
		cmocka_unit_test(allowed_addresses),
		cmocka_unit_test(counts_survive_a_fork),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
