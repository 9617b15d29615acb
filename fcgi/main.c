/*
 * ai-chat-fcgi: settings, database migration, the listening socket, and (with WORKER_PROCESSES > 1)
 * a supervisor that keeps that many worker processes running.
 */
#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <sqlite3.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/provider.h"
#include "../common/repo.h"
#include "../common/util.h"
#include "../common/auth.h"
#include "cli_db.h"
#include "cli_user.h"
#include "listen_tcp.h"
#include "server.h"
#include "worker.h"

#define PROGRAM "ai-chat-fcgi"
#define VERSION "1.0.0"
#define LISTEN_BACKLOG 4096	/* the kernel caps it at somaxconn (4096 on Debian 12) */
#define RESPAWN_MIN_SECONDS 1	/* a worker that dies sooner than this after its start is restarted late */
#define MMAP_THRESHOLD (128 * 1024)	/* allocations this large are mapped, and given back when freed */
#ifndef AC_SYSCONF_FILE
#define AC_SYSCONF_FILE "/usr/local/etc/ai-chat-fcgi/ai-chat.env"	/* make install's; -D overrides */
#endif

static void
usage(FILE *f)
{
	fprintf(f, "usage: %s [--socket PATH] [--check-config] [--config-value NAME] [--routes] [--version]\n"
	    "       %s user add EMAIL [--admin] | user role EMAIL admin|user | user adopt OLD_USER_ID EMAIL\n"
	    "       %s db copy FROM_URL TO_URL [--force] | db backup PATH [--force] | db check [URL]\n"
	    "Serves the AI chat API over FastCGI: on the unix socket PATH (or FCGI_SOCKET), or on the\n"
	    "listening socket passed as fd 0 (spawn-fcgi, systemd).  Settings come from the environment\n"
	    "and ./.env; see README.md.\n", PROGRAM, PROGRAM, PROGRAM);
}

/* Creates the unix socket at path with the configured mode and group. */
static int
open_socket(const struct ac_config *cfg)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
	if (lstat(cfg->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "%s: FCGI_SOCKET: %s exists and is not a socket\n", PROGRAM,
			    cfg->socket_path);
			return -1;
		}
		unlink(cfg->socket_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Never a moment with looser permissions than asked for. */
	mode_t old = umask(0777 & ~cfg->socket_mode);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));

	umask(old);
	if (rc != 0 || chmod(cfg->socket_path, cfg->socket_mode) != 0)
		goto fail;
	if (cfg->socket_group[0] != '\0') {
		struct group *g = getgrnam(cfg->socket_group);

		if (g == NULL) {
			fprintf(stderr, "%s: FCGI_SOCKET_GROUP: no group '%s'\n", PROGRAM, cfg->socket_group);
			close(fd);
			return -1;
		}
		if (chown(cfg->socket_path, (uid_t)-1, g->gr_gid) != 0)
			goto fail;
	}
	if (listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "%s: FCGI_SOCKET: %s: %s\n", PROGRAM, cfg->socket_path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* fd 0 as a listening socket (spawn-fcgi, systemd), or -1. */
static int
inherited_socket(void)
{
	int listening = 0;
	socklen_t len = sizeof(listening);

	if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
		return -1;
	return 0;
}

static pid_t
spawn(const struct ac_config *cfg, int listen_fd)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(ac_serve(cfg, listen_fd));
	if (pid > 0)
		ac_metrics_process_add(pid);
	if (pid < 0)
		ac_log(AC_LOG_ERROR, "fork: %s; trying again in %d s", strerror(errno), RESPAWN_MIN_SECONDS);
	return pid;
}

/*
 * Keeps cfg->processes workers running until SIGTERM/SIGINT, then stops them and waits.  SIGHUP and
 * SIGUSR1 reopen LOG_FILE, here and in every worker.  A slot whose fork failed, or whose worker died,
 * is filled again at most once a second (a worker that cannot start must not spin), timed on the
 * monotonic clock.
 */
static int
supervise(const struct ac_config *cfg, int listen_fd)
{
	pid_t *pids = calloc((size_t)cfg->processes, sizeof(*pids));
	int64_t *started = calloc((size_t)cfg->processes, sizeof(*started));
	sigset_t set;
	int stopping = 0, alive = 0, status = 0;

	if (pids == NULL || started == NULL) {
		fprintf(stderr, "%s: out of memory\n", PROGRAM);
		free(pids);
		free(started);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	ac_metrics_process_add(getpid());
	for (int i = 0; i < cfg->processes; i++) {
		pids[i] = spawn(cfg, listen_fd);
		if (pids[i] < 0)
			pids[i] = 0;
		started[i] = ac_mono_us();
	}
	for (;;) {
		struct timespec tick = { 1, 0 };
		int sig = sigtimedwait(&set, NULL, &tick);
		pid_t pid;
		int ws;

		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = 1;
			for (int i = 0; i < cfg->processes; i++) {
				if (pids[i] > 0)
					kill(pids[i], SIGTERM);
			}
		}
		if (sig == SIGHUP || sig == SIGUSR1) {
			if (ac_log_reopen() != AC_OK)
				ac_log(AC_LOG_ERROR, "cannot reopen LOG_FILE: %s", strerror(errno));
			for (int i = 0; i < cfg->processes; i++) {
				if (pids[i] > 0)
					kill(pids[i], sig);
			}
		}
		while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
			for (int i = 0; i < cfg->processes; i++) {
				if (pids[i] != pid)
					continue;
				pids[i] = 0;
				ac_metrics_process_remove(pid);
				if (stopping) {
					if (WIFSIGNALED(ws) || WEXITSTATUS(ws) != 0)
						status = 1;
				} else if (WIFSIGNALED(ws)) {
					ac_log(AC_LOG_ERROR, "worker %d killed by signal %d; restarting it", (int)pid,
					    WTERMSIG(ws));
				} else {
					ac_log(AC_LOG_ERROR, "worker %d exited with status %d; restarting it", (int)pid,
					    WEXITSTATUS(ws));
				}
			}
		}
		alive = 0;
		for (int i = 0; i < cfg->processes; i++)
			alive += pids[i] > 0;
		if (stopping) {
			if (alive == 0)
				break;
			continue;
		}
		for (int i = 0; i < cfg->processes; i++) {
			if (pids[i] == 0 && ac_mono_us() - started[i] >= RESPAWN_MIN_SECONDS * 1000000LL) {
				pids[i] = spawn(cfg, listen_fd);
				if (pids[i] < 0)
					pids[i] = 0;	/* the slot stays empty, and is tried again */
				started[i] = ac_mono_us();
			}
		}
	}
	free(pids);
	free(started);
	return status;
}

/* Each thread holds a FastCGI connection, a provider connection and SQLite's files: lift the soft
 * limit on open files to the hard one. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * The settings file: AI_CHAT_CONFIG, else ./.env when there is one, else the installed file (a CGI
 * program cannot count on its working directory).
 */
static const char *
config_file(void)
{
	const char *p = getenv("AI_CHAT_CONFIG");

	if (p != NULL && *p != '\0')
		return p;
	if (access(".env", R_OK) == 0)
		return ".env";
	return AC_SYSCONF_FILE;
}

static int
print_value(const struct ac_config *cfg, const char *name)
{
	if (strcmp(name, "PORT") == 0)
		printf("%d\n", cfg->port);
	else if (strcmp(name, "MAX_BODY_BYTES") == 0)
		printf("%zu\n", cfg->max_body);
	else if (strcmp(name, "MAX_IMPORT_BYTES") == 0)
		printf("%zu\n", cfg->max_import);
	else if (strcmp(name, "WORKER_PROCESSES") == 0)
		printf("%d\n", cfg->processes);
	else if (strcmp(name, "WORKER_THREADS") == 0)
		printf("%d\n", cfg->threads);
	else if (strcmp(name, "DATABASE_PATH") == 0)
		printf("%s\n", cfg->db_path);
	else if (strcmp(name, "AUTH") == 0)
		printf("%s\n", cfg->auth_mode == AC_AUTH_TOKEN ? "token" : cfg->auth_mode == AC_AUTH_REMOTE_USER ?
		    "remote-user" : "none");
	else if (strcmp(name, "JWT_SECRET_SET") == 0)	/* never the secret itself */
		printf("%s\n", cfg->jwt_secret[0] != '\0' ? "yes" : "no");
	else {
		fprintf(stderr, "%s: --config-value: unknown setting '%s'\n", PROGRAM, name);
		return 2;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ac_config cfg;
	struct ac_db_conf db;
	char msg[512];
	const char *socket_arg = NULL, *value_of = NULL;
	int check_only = 0, listen_fd, status, db_command = 0;
	sigset_t set;

	/*
	 * Signals in one place: blocked here, before any thread exists, so that every thread inherits
	 * the mask and no handler ever interrupts a read or write (libfcgi's do not retry on EINTR).
	 * The supervisor, or a worker's main thread, takes them with sigtimedwait.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Connections are per thread: SQLite's global memory statistics would only add a lock to every
	 * allocation.  Only possible before SQLite is first used. */
	if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
		fprintf(stderr, "%s: warning: SQLite's memory statistics could not be turned off\n", PROGRAM);
	/* Fixed (not adaptive) mmap threshold: a thread's large buffers are mapped, and unmapped when it
	 * gives them back, instead of staying in its malloc arena after a burst of large requests. */
	(void)mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);

	for (int i = 1; i < argc && db_command == 0; i++) {
		if (i == 1 && (strcmp(argv[i], "db") == 0 || strcmp(argv[i], "user") == 0)) {
			db_command = i;		/* ai-chat-fcgi db|user ...: fcgi/cli_db.c, fcgi/cli_user.c */
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			socket_arg = argv[++i];
		} else if (strcmp(argv[i], "--config-value") == 0 && i + 1 < argc) {
			value_of = argv[++i];
		} else if (strcmp(argv[i], "--routes") == 0) {
			ac_routes_print(stdout);
			return 0;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check_only = 1;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("%s %s\n", PROGRAM, VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (ac_config_load(&cfg, config_file(), msg, sizeof(msg)) != AC_OK) {
		fprintf(stderr, "%s: configuration: %s\n", PROGRAM, msg);
		return 2;
	}
	if (db_command > 0 && strcmp(argv[db_command], "user") == 0)
		return ac_cli_user(&cfg, argc - db_command, argv + db_command);
	if (db_command > 0)
		return ac_cli_db(&cfg, argc - db_command, argv + db_command);
	if (socket_arg != NULL) {
		if (strlen(socket_arg) >= sizeof(cfg.socket_path)) {
			fprintf(stderr, "%s: --socket: the path is too long\n", PROGRAM);
			return 2;
		}
		memcpy(cfg.socket_path, socket_arg, strlen(socket_arg) + 1);
	}
	if (value_of != NULL)
		return print_value(&cfg, value_of);
	if (cfg.auth_mode == AC_AUTH_TOKEN && cfg.jwt_secret[0] == '\0') {
		fprintf(stderr, "%s: configuration: JWT_SECRET is not set: AUTH=token (the default) signs its "
		    "tokens with it (at least %d bytes; make one with: openssl rand -hex 32), or set "
		    "AUTH=remote-user or AUTH=none\n", PROGRAM, AC_JWT_SECRET_MIN);
		return 2;
	}
	if (ac_log_open(cfg.log_file, cfg.log_level) != AC_OK) {
		fprintf(stderr, "%s: LOG_FILE: %s: %s\n", PROGRAM, cfg.log_file, strerror(errno));
		return 2;
	}
	ac_log_set_json(cfg.log_json != 0);

	/* Before any thread or worker process, and for --check-config (JWT_PUBLIC_KEY_FILE is read). */
	if (ac_auth_init(&cfg, msg, sizeof(msg)) != AC_OK) {
		fprintf(stderr, "%s: configuration: %s\n", PROGRAM, msg);
		return 2;
	}
	ac_config_db(&cfg, &db);
	if (ac_repo_migrate(&db, msg, sizeof(msg)) != AC_OK) {
		fprintf(stderr, "%s: database %s: %s\n", PROGRAM, cfg.db_display, msg);
		return 1;
	}
	if (check_only) {
		printf("%s: configuration and database %s are usable\n", PROGRAM, cfg.db_display);
		return 0;
	}

	raise_fd_limit();
	if (ac_provider_global_init() != AC_OK) {
		fprintf(stderr, "%s: libcurl failed to initialise\n", PROGRAM);
		return 1;
	}
	if (ac_listen_tcp_prepare(&cfg) != 0)
		return 2;
	if (FCGX_Init() != 0) {
		fprintf(stderr, "%s: FCGX_Init failed\n", PROGRAM);
		return 1;
	}
	/* FCGX_Init installed handlers of its own: for SIGUSR1 and SIGTERM one after which every accept
	 * fails, for SIGPIPE one in place of our SIG_IGN.  Put back ours: the signals it cares about are
	 * blocked and taken by sigtimedwait, and a write to a closed connection is just an EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	/* Neither a socket of our own nor a listening one on fd 0: a CGI request. */
	if (cfg.socket_path[0] == '\0' && inherited_socket() < 0 && FCGX_IsCGI())
		return ac_serve_cgi(&cfg);
	listen_fd = cfg.socket_path[0] == '\0' ? inherited_socket() :
	    ac_listen_is_tcp(cfg.socket_path) ? ac_listen_tcp(&cfg) : open_socket(&cfg);
	if (listen_fd < 0) {
		if (cfg.socket_path[0] == '\0')
			fprintf(stderr, "%s: no FastCGI socket: set FCGI_SOCKET (or --socket), or start me "
			    "with a listening socket on fd 0 (spawn-fcgi, systemd)\n", PROGRAM);
		return 1;
	}
	/* The dummy hash, once, before the workers fork (a CGI request never makes one it does not need). */
	if (cfg.auth_mode == AC_AUTH_TOKEN)
		ac_auth_prepare();
	/* The shared counters, before any fork: every worker adds to the same ones. */
	{
		const char *routes[AC_METRICS_ROUTES];
		int n = ac_routes_names(routes, AC_METRICS_ROUTES - 1);

		if (ac_metrics_init(&cfg, routes, n) != AC_OK) {
			fprintf(stderr, "%s: METRICS: cannot map the shared counters: %s\n", PROGRAM, strerror(errno));
			return 1;
		}
	}
	ac_log(AC_LOG_INFO, "serving %s with %d process%s of %d threads, database %s, AUTH=%s",
	    cfg.socket_path[0] != '\0' ? cfg.socket_path : "fd 0", cfg.processes,
	    cfg.processes == 1 ? "" : "es", cfg.threads, cfg.db_display,
	    cfg.auth_mode == AC_AUTH_TOKEN ? "token" : cfg.auth_mode == AC_AUTH_REMOTE_USER ? "remote-user" : "none");
	if (cfg.auth_mode == AC_AUTH_NONE)
		ac_log(AC_LOG_WARN, "AUTH=none: the user is whoever a call names (user_id), believed as it is; only for "
		    "a backend that nothing but a trusted application server can reach");
	if (cfg.processes == 1)
		status = ac_serve(&cfg, listen_fd);
	else
		status = supervise(&cfg, listen_fd);
	if (cfg.socket_path[0] != '\0' && !ac_listen_is_tcp(cfg.socket_path))
		unlink(cfg.socket_path);
	return status;
}
