/* The worker process: a pool of threads accepting FastCGI requests on one listening socket. */
#ifndef AC_SERVER_H
#define AC_SERVER_H

#include "../common/config.h"

/*
 * Serves on listen_fd until SIGTERM or SIGINT (which the caller has blocked in every thread), then
 * stops accepting, lets the requests in flight finish, and returns the process's exit status.
 */
int ac_serve(const struct ac_config *cfg, int listen_fd);

/* Answers the one CGI request in the environment and stdin, on stdout; returns the exit status. */
int ac_serve_cgi(const struct ac_config *cfg);

#endif
