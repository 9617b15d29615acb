/*
 * The request's input and output: FastCGI streams, or stdin and stdout for a CGI request.  Every
 * read from the web server has the request's deadline (FCGI_READ_TIMEOUT_S, server.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "../common/util.h"
#include "server.h"
#include "worker.h"

/* CGI: stdin, within the deadline (the server may keep it open past the body: RFC 3875 says to read
 * CONTENT_LENGTH bytes, which request.c asks for, and no more). */
static int
cgi_read(char *buf, int len, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		int64_t left = deadline - ac_mono_us();
		ssize_t n;
		int rc;

		if (left <= 0)
			return -1;
		rc = poll(&pfd, 1, (int)((left + 999) / 1000));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		n = read(STDIN_FILENO, buf, (size_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		return (int)n;
	}
}

int
ac_io_read(struct ac_ctx *c, char *buf, int len)
{
	int64_t deadline = ac_server_read_begin();
	int n;

	if (c->cgi)
		n = cgi_read(buf, len, deadline);
	else
		n = FCGX_GetStr(buf, len, c->fcgi.in);
	ac_server_read_end();
	return n;
}

int
ac_io_write(struct ac_ctx *c, const char *buf, int len)
{
	if (!c->cgi)
		return FCGX_PutStr(buf, len, c->fcgi.out) < 0 ? -1 : len;
	for (int done = 0; done < len;) {
		ssize_t n = write(STDOUT_FILENO, buf + done, (size_t)(len - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (int)n;
	}
	return len;
}

int
ac_io_flush(struct ac_ctx *c)
{
	return c->cgi ? 0 : FCGX_FFlush(c->fcgi.out);	/* CGI output is not buffered here */
}

int
ac_io_read_complete(struct ac_ctx *c)
{
	/* FastCGI: the empty record that ends the input arrived, and no error came before it.  CGI:
	 * CONTENT_LENGTH bytes were asked for (a short body is caught against it). */
	if (c->cgi)
		return 1;
	return FCGX_GetError(c->fcgi.in) == 0 && FCGX_HasSeenEOF(c->fcgi.in) == EOF;
}
