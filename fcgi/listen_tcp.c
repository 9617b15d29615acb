/*
 * FCGI_SOCKET=host:port, IPv4 only, and only FCGI_ALLOWED_PEERS are served (the accept loop asks
 * ac_listen_peer_allowed of every connection); a TCP socket is refused without FCGI_ALLOWED_PEERS:
 * the FastCGI protocol has no authentication, and libfcgi's parser has had attacker-sized overflows
 * (CVE-2025-23016), so only the front ends may reach it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen_tcp.h"

#define TCP_BACKLOG 1024
#define MAX_PEERS 128

/* Set once by ac_listen_tcp_prepare, before any thread; only read afterwards. */
static bool tcp;
static struct in_addr peers[MAX_PEERS];
static int npeers;

bool
ac_listen_is_tcp(const char *spec)
{
	const char *colon = strrchr(spec, ':');

	return spec[0] != '\0' && strchr(spec, '/') == NULL && colon != NULL && colon[1] != '\0' &&
	    strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

int
ac_listen_tcp_prepare(const struct ac_config *cfg)
{
	if (!ac_listen_is_tcp(cfg->socket_path))
		return 0;
	if (cfg->allowed_peers[0] == '\0') {
		fprintf(stderr, "ai-chat-fcgi: FCGI_SOCKET %s is a TCP socket: set FCGI_ALLOWED_PEERS to the "
		    "addresses of the front ends that may connect (such as 10.0.0.2,10.0.0.3)\n", cfg->socket_path);
		return -1;
	}
	for (const char *p = cfg->allowed_peers; *p != '\0';) {
		char addr[INET_ADDRSTRLEN];
		size_t n = strcspn(p, ",");

		if (npeers == MAX_PEERS || n >= sizeof(addr)) {
			fprintf(stderr, "ai-chat-fcgi: FCGI_ALLOWED_PEERS: more than %d addresses\n", MAX_PEERS);
			return -1;
		}
		memcpy(addr, p, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET, addr, &peers[npeers]) == 1)	/* config.c checked each */
			npeers++;
		p += n + (p[n] == ',');
	}
	tcp = true;
	return 0;
}

bool
ac_listen_peer_allowed(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (!tcp)
		return true;
	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 || sa.sin_family != AF_INET)
		return false;
	for (int i = 0; i < npeers; i++) {
		if (peers[i].s_addr == sa.sin_addr.s_addr)
			return true;
	}
	return false;
}

int
ac_listen_tcp(const struct ac_config *cfg)
{
	struct addrinfo hints, *res = NULL;
	char host[108];
	const char *colon = strrchr(cfg->socket_path, ':');
	long port = strtol(colon + 1, NULL, 10);
	int fd = -1, one = 1, rc;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->socket_path), cfg->socket_path);
	if (port < 1 || port > 65535 || host[0] == '\0') {
		fprintf(stderr, "ai-chat-fcgi: FCGI_SOCKET: '%s' is not host:port with a port from 1 to 65535\n",
		    cfg->socket_path);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		fprintf(stderr, "ai-chat-fcgi: FCGI_SOCKET: %s: %s (an IPv4 address is needed)\n", host,
		    gai_strerror(rc));
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, TCP_BACKLOG) != 0) {
		fprintf(stderr, "ai-chat-fcgi: FCGI_SOCKET: %s: %s\n", cfg->socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}
