/*
 * bench-trivial: the benchmark's baseline, a threaded libfcgi responder that does nothing but answer.
 *
 * Every request, whatever its method or path, gets 200 {"status": "healthy"}.  tests/bench/bench.sh
 * runs it behind the same nginx configuration as the real worker (conf/stack.sh with
 * WORKER=build/bench-trivial), so the ratio real/trivial measures what the worker adds over libfcgi
 * and nginx themselves.
 *
 * Environment: FCGI_SOCKET (unix socket path, required), FCGI_SOCKET_MODE (octal, default 0660),
 * FCGI_SOCKET_GROUP (group to give the socket, optional), WORKER_THREADS (1..1024, default 8),
 * BODY_BYTES (0..4194304, default 0): answer a JSON body of exactly that many bytes instead (the
 * baseline for a page of that size), with its Content-Length, in one FCGX_PutStr like the worker.
 * SIGTERM or SIGINT: unlink the socket and exit at once (requests in flight are dropped; this is a
 * bench responder, not a server).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char RESPONSE[] =
    "Status: 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    "{\"status\": \"healthy\"}";

static const char *socket_path;
static int listen_fd = -1;
static char *sized;		/* BODY_BYTES: the whole answer, head and body */
static int sized_len;

static void on_stop(int sig)
{
    (void)sig;
    if (socket_path != NULL) {
        unlink(socket_path);
    }
    _exit(0);
}

static void *serve(void *arg)
{
    (void)arg;
    FCGX_Request request;
    if (FCGX_InitRequest(&request, listen_fd, 0) != 0) {
        fprintf(stderr, "bench-trivial: FCGX_InitRequest failed\n");
        return NULL;
    }
    while (FCGX_Accept_r(&request) >= 0) {
        if (sized != NULL)
            FCGX_PutStr(sized, sized_len, request.out);
        else
            FCGX_PutStr(RESPONSE, (int)(sizeof RESPONSE - 1), request.out);
        FCGX_Finish_r(&request);
    }
    fprintf(stderr, "bench-trivial: FCGX_Accept_r failed; thread exits\n");
    return NULL;
}

static long env_long(const char *name, long fallback, long min, long max, int base)
{
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') {
        return fallback;
    }
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, base);
    if (errno != 0 || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "bench-trivial: bad %s: '%s'\n", name, text);
        exit(2);
    }
    return value;
}

int main(void)
{
    socket_path = getenv("FCGI_SOCKET");
    if (socket_path == NULL || *socket_path == '\0') {
        fprintf(stderr, "bench-trivial: FCGI_SOCKET is not set\n");
        return 2;
    }
    long threads = env_long("WORKER_THREADS", 8, 1, 1024, 10);
    long mode = env_long("FCGI_SOCKET_MODE", 0660, 0, 0777, 8);
    long body_bytes = env_long("BODY_BYTES", 0, 0, 4194304, 10);

    if (body_bytes > 0) {
        char head[128];
        int n = snprintf(head, sizeof head, "Status: 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %ld\r\n\r\n", body_bytes);

        sized = malloc((size_t)n + (size_t)body_bytes);
        if (sized == NULL)
            return 1;
        memcpy(sized, head, (size_t)n);
        /* A JSON string of the right length: "xxx...". */
        memset(sized + n, 'x', (size_t)body_bytes);
        sized[n] = '"';
        sized[n + body_bytes - 1] = '"';
        sized_len = n + (int)body_bytes;
    }

    if (FCGX_Init() != 0) {
        fprintf(stderr, "bench-trivial: FCGX_Init failed\n");
        return 1;
    }

    /* Our handlers replace libfcgi's (it installs its own for SIGTERM/SIGUSR1 and ignores SIGPIPE). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    unlink(socket_path);
    /* Created with no access for others from the start; chmod below sets the exact mode. */
    mode_t old_umask = umask(0177);
    listen_fd = FCGX_OpenSocket(socket_path, 1024);
    umask(old_umask);
    if (listen_fd < 0) {
        fprintf(stderr, "bench-trivial: cannot listen on %s\n", socket_path);
        return 1;
    }
    const char *group = getenv("FCGI_SOCKET_GROUP");
    if (group != NULL && *group != '\0') {
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            fprintf(stderr, "bench-trivial: unknown group %s\n", group);
            unlink(socket_path);
            return 1;
        }
        if (chown(socket_path, (uid_t)-1, gr->gr_gid) != 0) {
            fprintf(stderr, "bench-trivial: chgrp %s %s: %s\n", group, socket_path, strerror(errno));
            unlink(socket_path);
            return 1;
        }
    }
    if (chmod(socket_path, (mode_t)mode) != 0) {
        fprintf(stderr, "bench-trivial: chmod %s: %s\n", socket_path, strerror(errno));
        unlink(socket_path);
        return 1;
    }

    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    if (ids == NULL) {
        fprintf(stderr, "bench-trivial: out of memory\n");
        return 1;
    }
    long started = 0;
    for (long i = 0; i < threads; i++) {
        int rc = pthread_create(&ids[i], NULL, serve, NULL);
        if (rc != 0) {
            fprintf(stderr, "bench-trivial: pthread_create: %s\n", strerror(rc));
            break;
        }
        started++;
    }
    if (started == 0) {
        unlink(socket_path);
        return 1;
    }
    fprintf(stderr, "bench-trivial: %ld threads on %s\n", started, socket_path);
    for (long i = 0; i < started; i++) {
        pthread_join(ids[i], NULL);
    }
    free(ids);
    unlink(socket_path);
    return 1; /* every thread failed */
}
