/* The worker's TCP listening socket: FCGI_SOCKET=host:port, for FastCGI hosts behind a front end on
 * another machine, open only to FCGI_ALLOWED_PEERS. */
#ifndef AC_LISTEN_TCP_H
#define AC_LISTEN_TCP_H

#include <stdbool.h>

#include "../common/config.h"

/* Whether FCGI_SOCKET names host:port rather than a unix socket's path. */
bool ac_listen_is_tcp(const char *spec);

/* Before FCGX_Init: hands FCGI_ALLOWED_PEERS to libfcgi, which closes other peers' connections at
 * accept.  -1 (having said why on stderr) when FCGI_SOCKET is TCP and no peer is allowed. */
int ac_listen_tcp_prepare(const struct ac_config *cfg);

/* Binds and listens on FCGI_SOCKET's host:port (an IPv4 address or a name that resolves to one);
 * the descriptor, or -1 having said why on stderr. */
int ac_listen_tcp(const struct ac_config *cfg);

#endif
