/* The worker process: a pool of threads accepting FastCGI requests on one listening socket. */
#ifndef AC_SERVER_H
#define AC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/config.h"

/*
 * Serves on listen_fd until SIGTERM or SIGINT, then stops accepting, lets the requests in flight
 * finish, and returns the process's exit status.  The caller has blocked SIGTERM, SIGINT, SIGHUP and
 * SIGUSR1 (and SIGCHLD) before any thread exists: the calling thread takes them (HUP and USR1 reopen
 * LOG_FILE).  Every request must be read whole within FCGI_READ_TIMEOUT_S of its connection: a
 * connection still sending it then is shut down, and costs no thread after that.
 */
int ac_serve(const struct ac_config *cfg, int listen_fd);

/* Answers the one CGI request in the environment and stdin, on stdout; returns the exit status. */
int ac_serve_cgi(const struct ac_config *cfg);

/*
 * Brackets each read from the web server (io.c): while inside, the connection is shut down at the
 * request's deadline.  ac_server_read_begin returns that deadline (ac_mono_us(); 0: none), which
 * a CGI request's reads of stdin poll with.
 */
int64_t ac_server_read_begin(void);
void ac_server_read_end(void);

/* Whether the process is stopping (SIGTERM): work that may wait (a reply stored late) gives up. */
bool ac_server_stopping(void);

#endif
