/* The request's input and output: FastCGI streams, or stdin and stdout for a CGI request. */
#include <errno.h>
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
