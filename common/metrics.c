/* Prometheus metrics in shared memory (metrics.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "provider.h"
#include "util.h"

#define METHODS 8		/* GET HEAD POST PUT PATCH DELETE OPTIONS, other */
#define BUCKETS_MAX 16
#define MODELS (AC_MODELS_MAX + 1)	/* the registry's, and "other" */
#define OUTCOMES (AC_LLM_CANCELLED + 1)
#define PROCS 80		/* WORKER_PROCESSES (at most 64) and the supervisor */
#define ALLOW_MAX 32

static const char *const method_names[METHODS] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
};

/* The status codes this API answers; any other counts as "other". */
static const int statuses[] = {
	200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 413, 414, 415, 422, 429, 431, 499, 500, 502, 503, 504,
};
#define STATUSES (sizeof(statuses) / sizeof(statuses[0]) + 1)

static const char *const outcome_names[OUTCOMES] = {
	[AC_LLM_OK] = "ok", [AC_LLM_NO_KEY] = "no_key", [AC_LLM_RATE_LIMITED] = "rate_limited",
	[AC_LLM_TIMEOUT] = "timeout", [AC_LLM_UNREACHABLE] = "unreachable", [AC_LLM_KEY_REFUSED] = "key_refused",
	[AC_LLM_MODEL_UNAVAILABLE] = "model_unavailable", [AC_LLM_REJECTED] = "rejected",
	[AC_LLM_PROVIDER_ERROR] = "provider_error", [AC_LLM_BAD_RESPONSE] = "bad_response",
	[AC_LLM_CANCELLED] = "cancelled",
};

static const char *const limit_names[AC_LIMIT_COUNT] = {
	[AC_LIMIT_PROVIDER] = "provider", [AC_LIMIT_USER_REQUESTS] = "user_requests",
	[AC_LIMIT_USER_TOKENS] = "user_tokens", [AC_LIMIT_USER_CONCURRENT] = "user_concurrent",
	[AC_LIMIT_LOGIN] = "login",
};

static const char *const auth_names[AC_AUTH_COUNT] = {
	[AC_AUTH_MISSING] = "missing", [AC_AUTH_MALFORMED] = "malformed", [AC_AUTH_INVALID] = "invalid",
	[AC_AUTH_EXPIRED] = "expired", [AC_AUTH_REVOKED] = "revoked", [AC_AUTH_PASSWORD] = "password",
};

/* Upper bounds in microseconds (the +Inf bucket is the count). */
static const int64_t http_bounds[] = { 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 30000000, 60000000, 120000000 };
static const int64_t provider_bounds[] = { 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
	20000000, 30000000, 60000000, 120000000, 300000000 };
static const int64_t ttft_bounds[] = { 50000, 100000, 250000, 500000, 1000000, 2000000, 5000000,
	10000000, 30000000, 60000000 };
#define NB(a) ((int)(sizeof(a) / sizeof(a[0])))

/* Bucket counts are not cumulative here (each observation adds to one): the exposition sums them. */
struct hist {
	_Atomic uint64_t b[BUCKETS_MAX + 1];	/* the last: above every bound */
	_Atomic uint64_t sum_us;
};

struct shared {
	_Atomic uint64_t http[AC_METRICS_ROUTES][METHODS][STATUSES];
	struct hist http_dur[AC_METRICS_ROUTES];
	_Atomic uint64_t provider[MODELS][OUTCOMES];
	struct hist provider_dur[MODELS];
	struct hist ttft[MODELS];
	_Atomic uint64_t tokens[MODELS][2];	/* prompt, completion */
	_Atomic int64_t in_flight;
	_Atomic uint64_t retries;
	_Atomic uint64_t db_errors;
	_Atomic uint64_t auth[AC_AUTH_COUNT];
	_Atomic uint64_t limited[AC_LIMIT_COUNT];
	_Atomic int pids[PROCS];	/* 0: a free slot */
};

struct net {
	int family;
	unsigned char addr[16];
	int prefix;
};

/* Set once by ac_metrics_init, before any fork or thread; read-only after. */
static struct shared *shm;
static const struct ac_config *cfg_of;
static const char *route_names[AC_METRICS_ROUTES];
static int nroutes;
static struct net allow[ALLOW_MAX];
static int nallow;

/* One entry of METRICS_ALLOW: "10.0.0.0/8", "::1", "192.168.1.7". */
static bool
parse_net(const char *s, size_t n, struct net *out)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *slash;
	int max;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	slash = strchr(tmp, '/');
	if (slash != NULL)
		tmp[slash - tmp] = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	out->prefix = max;
	if (slash != NULL) {
		int64_t p;
		const char *d = slash + 1;

		if (ac_parse_i64(s + (d - tmp), n - (size_t)(d - tmp), 0, max, &p) != AC_OK)
			return false;
		out->prefix = (int)p;
	}
	return true;
}

/* Calls fn on each entry; false (with msg) at the first that is not an address or range. */
static bool
parse_allow(const char *list, struct net *nets, int *count, char *msg, size_t msg_size)
{
	const char *p = list;

	*count = 0;
	while (*p != '\0') {
		size_t n;
		struct net net;

		p += strspn(p, " ,");
		n = strcspn(p, " ,");
		if (n == 0)
			break;
		if (!parse_net(p, n, &net)) {
			snprintf(msg, msg_size, "METRICS_ALLOW: '%.*s' is not an IP address or CIDR range (such as "
			    "10.0.0.0/8)", (int)(n > 64 ? 64 : n), p);
			return false;
		}
		if (*count == ALLOW_MAX) {
			snprintf(msg, msg_size, "METRICS_ALLOW: at most %d entries", ALLOW_MAX);
			return false;
		}
		if (nets != NULL)
			nets[*count] = net;
		(*count)++;
		p += n;
	}
	return true;
}

enum ac_err
ac_metrics_allow_check(const char *list, char *msg, size_t msg_size)
{
	int n;

	return parse_allow(list, NULL, &n, msg, msg_size) ? AC_OK : AC_EINVAL;
}

static bool
in_net(const struct net *net, int family, const unsigned char *a)
{
	int full = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != family)
		return false;
	if (memcmp(net->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

bool
ac_metrics_allowed(const char *addr)
{
	unsigned char a[16];
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (shm == NULL || addr == NULL)
		return false;
	if (inet_pton(AF_INET, addr, a) == 1) {
		for (int i = 0; i < nallow; i++)
			if (in_net(&allow[i], AF_INET, a))
				return true;
		return false;
	}
	if (inet_pton(AF_INET6, addr, a) != 1)
		return false;
	for (int i = 0; i < nallow; i++) {
		if (in_net(&allow[i], AF_INET6, a))
			return true;
		/* ::ffff:127.0.0.1 is 127.0.0.1 */
		if (memcmp(a, mapped, sizeof(mapped)) == 0 && in_net(&allow[i], AF_INET, a + 12))
			return true;
	}
	return false;
}

enum ac_err
ac_metrics_init(const struct ac_config *cfg, const char *const *routes, int count)
{
	char msg[160];
	void *m;

	if (!cfg->metrics)
		return AC_OK;
	if (!parse_allow(cfg->metrics_allow, allow, &nallow, msg, sizeof(msg)))
		return AC_EINVAL;
	m = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return AC_ESYS;
	shm = m;	/* zeroed by the kernel */
	cfg_of = cfg;
	nroutes = 0;
	for (int i = 0; i < count && nroutes < AC_METRICS_ROUTES - 1; i++)
		route_names[nroutes++] = routes[i];
	return AC_OK;
}

bool
ac_metrics_on(void)
{
	return shm != NULL;
}

void
ac_metrics_process_add(pid_t pid)
{
	if (shm == NULL)
		return;
	for (int i = 0; i < PROCS; i++) {
		int zero = 0;

		if (atomic_compare_exchange_strong(&shm->pids[i], &zero, (int)pid))
			return;
	}
}

void
ac_metrics_process_remove(pid_t pid)
{
	if (shm == NULL)
		return;
	for (int i = 0; i < PROCS; i++) {
		int p = (int)pid;

		if (atomic_compare_exchange_strong(&shm->pids[i], &p, 0))
			return;
	}
}

static void
observe(struct hist *h, const int64_t *bounds, int nb, int64_t us)
{
	int i = 0;

	if (us < 0)
		us = 0;
	while (i < nb && us > bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

static int
route_index(const char *route)
{
	if (route == NULL)
		return nroutes;
	for (int i = 0; i < nroutes; i++)	/* the router's own strings: the pointer says */
		if (route == route_names[i])
			return i;
	for (int i = 0; i < nroutes; i++)
		if (strcmp(route, route_names[i]) == 0)
			return i;
	return nroutes;	/* "other" */
}

void
ac_metrics_http(const char *route, const char *method, int status, int64_t duration_us)
{
	int r, m = METHODS - 1;
	size_t s = STATUSES - 1;

	if (shm == NULL)
		return;
	r = route_index(route);
	for (int i = 0; method != NULL && i < METHODS - 1; i++) {
		if (strcmp(method, method_names[i]) == 0) {
			m = i;
			break;
		}
	}
	for (size_t i = 0; i < STATUSES - 1; i++) {
		if (statuses[i] == status) {
			s = i;
			break;
		}
	}
	atomic_fetch_add_explicit(&shm->http[r][m][s], 1, memory_order_relaxed);
	observe(&shm->http_dur[r], http_bounds, NB(http_bounds), duration_us);
}

void
ac_metrics_provider(int model, int outcome, int64_t duration_us, int64_t ttft_us, int64_t prompt_tokens,
    int64_t completion_tokens)
{
	if (shm == NULL)
		return;
	if (model < 0 || model >= cfg_of->models.count)
		model = MODELS - 1;
	if (outcome < 0 || outcome >= OUTCOMES)
		outcome = AC_LLM_PROVIDER_ERROR;
	atomic_fetch_add_explicit(&shm->provider[model][outcome], 1, memory_order_relaxed);
	observe(&shm->provider_dur[model], provider_bounds, NB(provider_bounds), duration_us);
	if (ttft_us >= 0)
		observe(&shm->ttft[model], ttft_bounds, NB(ttft_bounds), ttft_us);
	if (prompt_tokens > 0)
		atomic_fetch_add_explicit(&shm->tokens[model][0], (uint64_t)prompt_tokens, memory_order_relaxed);
	if (completion_tokens > 0)
		atomic_fetch_add_explicit(&shm->tokens[model][1], (uint64_t)completion_tokens, memory_order_relaxed);
}

void
ac_metrics_in_flight(int delta)
{
	if (shm != NULL)
		atomic_fetch_add_explicit(&shm->in_flight, delta, memory_order_relaxed);
}

void
ac_metrics_retry(void)
{
	if (shm != NULL)
		atomic_fetch_add_explicit(&shm->retries, 1, memory_order_relaxed);
}

void
ac_metrics_db_error(void)
{
	if (shm != NULL)
		atomic_fetch_add_explicit(&shm->db_errors, 1, memory_order_relaxed);
}

void
ac_metrics_auth_failure(enum ac_metrics_auth reason)
{
	if (shm != NULL && reason < AC_AUTH_COUNT)
		atomic_fetch_add_explicit(&shm->auth[reason], 1, memory_order_relaxed);
}

void
ac_metrics_rate_limited(enum ac_metrics_limit limit)
{
	if (shm != NULL && limit < AC_LIMIT_COUNT)
		atomic_fetch_add_explicit(&shm->limited[limit], 1, memory_order_relaxed);
}

/* ---- the exposition ---- */

static uint64_t
load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void
family(struct ac_buf *b, const char *name, const char *type, const char *help)
{
	ac_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants (\\, \", \n). */
static void
label(struct ac_buf *b, const char *name, const char *value, bool first)
{
	ac_buf_printf(b, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			ac_buf_addc(b, '\\');
		if (*p == '\n') {
			ac_buf_adds(b, "\\n");
			continue;
		}
		ac_buf_addc(b, *p);
	}
	ac_buf_addc(b, '"');
}

static void
seconds(struct ac_buf *b, int64_t us)
{
	ac_buf_printf(b, "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
}

/* One histogram's series under one label (name=value); nothing when it is empty. */
static void
hist_write(struct ac_buf *b, const char *metric, const char *lname, const char *lvalue, struct hist *h,
    const int64_t *bounds, int nb)
{
	uint64_t counts[BUCKETS_MAX + 1], total = 0;

	for (int i = 0; i <= nb; i++) {
		counts[i] = load(&h->b[i]);
		total += counts[i];
	}
	if (total == 0)
		return;
	total = 0;
	for (int i = 0; i <= nb; i++) {
		total += counts[i];
		ac_buf_printf(b, "%s_bucket{", metric);
		label(b, lname, lvalue, true);
		ac_buf_adds(b, ",le=\"");
		if (i < nb)
			seconds(b, bounds[i]);
		else
			ac_buf_adds(b, "+Inf");
		ac_buf_printf(b, "\"} %llu\n", (unsigned long long)total);
	}
	ac_buf_printf(b, "%s_sum{", metric);
	label(b, lname, lvalue, true);
	ac_buf_adds(b, "} ");
	seconds(b, (int64_t)load(&h->sum_us));
	ac_buf_printf(b, "\n%s_count{", metric);
	label(b, lname, lvalue, true);
	ac_buf_printf(b, "} %llu\n", (unsigned long long)total);
}

static const char *
model_name(int i)
{
	return i < cfg_of->models.count ? cfg_of->models.m[i].alias : "other";
}

/* A process's figures from /proc (false when it is gone). */
struct proc_figures {
	double cpu_s;
	double start_s;
	uint64_t vsize;
	uint64_t rss;
	uint64_t fds;
};

/* Field n (1-based, as proc(5) numbers them) of a /proc/<pid>/stat line, from after the name. */
static unsigned long long
stat_field(const char *after_name, int n)
{
	const char *p = after_name;

	/* after_name is field 3; skip to field n */
	for (int i = 3; i < n && p != NULL; i++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	return p != NULL ? strtoull(p, NULL, 10) : 0;
}

static bool
proc_read(pid_t pid, struct proc_figures *f, long long btime)
{
	char path[64], text[1024];
	const char *p;
	FILE *fp;
	size_t n;
	DIR *d;
	struct dirent *e;
	double tick = (double)sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return false;
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	p = strrchr(text, ')');	/* after the command's name, which may hold anything */
	if (p == NULL || p[1] != ' ')
		return false;
	p += 2;
	f->cpu_s = (double)(stat_field(p, 14) + stat_field(p, 15)) / tick;
	f->start_s = (double)btime + (double)stat_field(p, 22) / tick;
	f->vsize = stat_field(p, 23);
	f->rss = stat_field(p, 24) * (uint64_t)sysconf(_SC_PAGESIZE);
	f->fds = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL)
			f->fds += e->d_name[0] != '.';
		closedir(d);
	}
	return true;
}

static long long
boot_time(void)
{
	char line[256];
	long long btime = 0;
	FILE *fp = fopen("/proc/stat", "r");

	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "btime ", 6) == 0) {
			btime = strtoll(line + 6, NULL, 10);
			break;
		}
	}
	fclose(fp);
	return btime;
}

static void
process_write(struct ac_buf *b)
{
	struct proc_figures sum = { 0, 0, 0, 0, 0 }, f;
	long long btime = boot_time();
	struct rlimit rl;
	int procs = 0;

	for (int i = 0; i < PROCS; i++) {
		int pid = atomic_load(&shm->pids[i]);

		if (pid <= 0 || !proc_read((pid_t)pid, &f, btime))
			continue;
		sum.cpu_s += f.cpu_s;
		sum.vsize += f.vsize;
		sum.rss += f.rss;
		sum.fds += f.fds;
		if (procs == 0 || f.start_s < sum.start_s)
			sum.start_s = f.start_s;
		procs++;
	}
	family(b, "process_cpu_seconds_total", "counter", "User and system CPU time of every process of the server.");
	ac_buf_printf(b, "process_cpu_seconds_total %.2f\n", sum.cpu_s);
	family(b, "process_resident_memory_bytes", "gauge", "Resident memory of every process of the server.");
	ac_buf_printf(b, "process_resident_memory_bytes %llu\n", (unsigned long long)sum.rss);
	family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory of every process of the server.");
	ac_buf_printf(b, "process_virtual_memory_bytes %llu\n", (unsigned long long)sum.vsize);
	family(b, "process_open_fds", "gauge", "Open file descriptors of every process of the server.");
	ac_buf_printf(b, "process_open_fds %llu\n", (unsigned long long)sum.fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		family(b, "process_max_fds", "gauge", "The open files limit of each process.");
		ac_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	family(b, "process_start_time_seconds", "gauge", "Start of the oldest process, in seconds since the epoch.");
	ac_buf_printf(b, "process_start_time_seconds %.2f\n", sum.start_s);
	family(b, "server_processes", "gauge", "Processes of the server (worker processes, and their supervisor).");
	ac_buf_printf(b, "server_processes %d\n", procs);
}

void
ac_metrics_write(struct ac_buf *b)
{
	if (shm == NULL)
		return;
	family(b, "http_requests_total", "counter", "HTTP requests answered, by route template, method and status.");
	for (int r = 0; r <= nroutes; r++) {
		for (int m = 0; m < METHODS; m++) {
			for (size_t s = 0; s < STATUSES; s++) {
				uint64_t v = load(&shm->http[r][m][s]);
				char code[16];

				if (v == 0)
					continue;
				if (s < STATUSES - 1)
					snprintf(code, sizeof(code), "%d", statuses[s]);
				else
					snprintf(code, sizeof(code), "other");
				ac_buf_adds(b, "http_requests_total{");
				label(b, "route", r < nroutes ? route_names[r] : "other", true);
				label(b, "method", method_names[m], false);
				label(b, "status", code, false);
				ac_buf_printf(b, "} %llu\n", (unsigned long long)v);
			}
		}
	}
	family(b, "http_request_duration_seconds", "histogram", "Time from a request's start to its answer's end, "
	    "by route template.");
	for (int r = 0; r <= nroutes; r++)
		hist_write(b, "http_request_duration_seconds", "route", r < nroutes ? route_names[r] : "other",
		    &shm->http_dur[r], http_bounds, NB(http_bounds));

	family(b, "provider_requests_total", "counter", "Calls to the model provider, by model alias and outcome "
	    "(retries within a call not counted apart).");
	for (int i = 0; i < MODELS; i++) {
		for (int o = 0; o < OUTCOMES; o++) {
			uint64_t v = load(&shm->provider[i][o]);

			if (v == 0)
				continue;
			ac_buf_adds(b, "provider_requests_total{");
			label(b, "model", model_name(i), true);
			label(b, "outcome", outcome_names[o], false);
			ac_buf_printf(b, "} %llu\n", (unsigned long long)v);
		}
	}
	family(b, "provider_request_duration_seconds", "histogram", "Whole provider calls, retries and waits "
	    "included, by model alias.");
	for (int i = 0; i < MODELS; i++)
		hist_write(b, "provider_request_duration_seconds", "model", model_name(i), &shm->provider_dur[i],
		    provider_bounds, NB(provider_bounds));
	family(b, "provider_time_to_first_token_seconds", "histogram", "From a streamed call's start to the first "
	    "piece of the reply, by model alias.");
	for (int i = 0; i < MODELS; i++)
		hist_write(b, "provider_time_to_first_token_seconds", "model", model_name(i), &shm->ttft[i],
		    ttft_bounds, NB(ttft_bounds));
	family(b, "llm_tokens_total", "counter", "Tokens the provider reported, by model alias and kind.");
	for (int i = 0; i < MODELS; i++) {
		for (int k = 0; k < 2; k++) {
			uint64_t v = load(&shm->tokens[i][k]);

			if (v == 0)
				continue;
			ac_buf_adds(b, "llm_tokens_total{");
			label(b, "model", model_name(i), true);
			label(b, "kind", k == 0 ? "prompt" : "completion", false);
			ac_buf_printf(b, "} %llu\n", (unsigned long long)v);
		}
	}
	family(b, "chats_in_flight", "gauge", "Calls to the model in progress.");
	ac_buf_printf(b, "chats_in_flight %lld\n", (long long)atomic_load(&shm->in_flight));
	family(b, "provider_retries_total", "counter", "Provider attempts retried (429, 5xx, connection failures).");
	ac_buf_printf(b, "provider_retries_total %llu\n", (unsigned long long)load(&shm->retries));
	family(b, "db_errors_total", "counter", "Database operations that failed (busy past the timeout, or an error).");
	ac_buf_printf(b, "db_errors_total %llu\n", (unsigned long long)load(&shm->db_errors));
	family(b, "auth_failures_total", "counter", "Requests refused for their credentials, by reason.");
	for (int i = 0; i < AC_AUTH_COUNT; i++)
		ac_buf_printf(b, "auth_failures_total{reason=\"%s\"} %llu\n", auth_names[i],
		    (unsigned long long)load(&shm->auth[i]));
	family(b, "rate_limited_total", "counter", "Requests refused for a limit, by the limit (provider: calls the provider's rate limit ended, retries spent).");
	for (int i = 0; i < AC_LIMIT_COUNT; i++)
		ac_buf_printf(b, "rate_limited_total{limit=\"%s\"} %llu\n", limit_names[i],
		    (unsigned long long)load(&shm->limited[i]));
	process_write(b);
}
