/* The worker's TCP listening socket: FCGI_SOCKET=host:port, for FastCGI hosts behind a front end on
 * another machine, open only to FCGI_ALLOWED_PEERS. */
#ifndef AC_LISTEN_TCP_H
#define AC_LISTEN_TCP_H

#include <stdbool.h>

#include "../common/config.h"

/* Whether FCGI_SOCKET names host:port rather than a unix socket's path. */
bool ac_listen_is_tcp(const char *spec);

/* Before the threads start: takes in FCGI_ALLOWED_PEERS (read-only afterwards).  -1 (having said why
 * on stderr) when FCGI_SOCKET is TCP and no peer is allowed. */
int ac_listen_tcp_prepare(const struct ac_config *cfg);

/* Whether an accepted connection's peer may be served (always, on a unix socket or fd 0). */
bool ac_listen_peer_allowed(int fd);

/* Binds and listens on FCGI_SOCKET's host:port (an IPv4 address or a name that resolves to one);
 * the descriptor, or -1 having said why on stderr. */
int ac_listen_tcp(const struct ac_config *cfg);

#endif
