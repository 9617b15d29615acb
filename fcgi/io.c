/* The request's input and output: FastCGI streams, or stdin and stdout for a CGI request. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "worker.h"

int
ac_io_read(struct ac_ctx *c, char *buf, int len)
{
	ssize_t n;

	if (!c->cgi)
		return FCGX_GetStr(buf, len, c->fcgi.in);
	do {
		n = read(STDIN_FILENO, buf, (size_t)len);
	} while (n < 0 && errno == EINTR);
	return (int)n;
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
	 * the end of stdin is the end (a short body is caught against CONTENT_LENGTH). */
	if (c->cgi)
		return 1;
	return FCGX_GetError(c->fcgi.in) == 0 && FCGX_HasSeenEOF(c->fcgi.in) == EOF;
}
