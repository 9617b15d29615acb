/* FastCGI records (the FastCGI 1.0 specification, section 3.3), the few the event loop writes. */
#include <string.h>

#include "record.h"

#define FCGI_VERSION_1 1
#define FCGI_END_REQUEST 3
#define FCGI_STDOUT 6
#define FCGI_REQUEST_COMPLETE 0

static void
header(unsigned char h[AC_FCGI_HEADER_LEN], int type, int request_id, size_t content_len, size_t padding)
{
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)((request_id >> 8) & 0xff);
	h[3] = (unsigned char)(request_id & 0xff);
	h[4] = (unsigned char)((content_len >> 8) & 0xff);
	h[5] = (unsigned char)(content_len & 0xff);
	h[6] = (unsigned char)padding;
	h[7] = 0;
}

size_t
ac_fcgi_record_size(size_t content_len)
{
	return AC_FCGI_HEADER_LEN + ((content_len + 7) & ~(size_t)7);
}

void
ac_fcgi_stdout(struct ac_buf *b, int request_id, const char *data, size_t len)
{
	static const char zeros[8] = { 0 };

	while (len > 0) {
		/* A record's content is at most 65535 bytes; 65528 keeps its padding 0 on all but the last. */
		size_t n = len > AC_FCGI_CONTENT_MAX - 7 ? AC_FCGI_CONTENT_MAX - 7 : len;
		size_t pad = ((n + 7) & ~(size_t)7) - n;
		unsigned char h[AC_FCGI_HEADER_LEN];

		header(h, FCGI_STDOUT, request_id, n, pad);
		ac_buf_add(b, h, sizeof(h));
		ac_buf_add(b, data, n);
		ac_buf_add(b, zeros, pad);
		data += n;
		len -= n;
	}
}

void
ac_fcgi_end(struct ac_buf *b, int request_id, int app_status)
{
	unsigned char h[AC_FCGI_HEADER_LEN], body[8];
	unsigned int st = (unsigned int)app_status;

	header(h, FCGI_STDOUT, request_id, 0, 0);
	ac_buf_add(b, h, sizeof(h));
	header(h, FCGI_END_REQUEST, request_id, sizeof(body), 0);
	ac_buf_add(b, h, sizeof(h));
	body[0] = (unsigned char)((st >> 24) & 0xff);
	body[1] = (unsigned char)((st >> 16) & 0xff);
	body[2] = (unsigned char)((st >> 8) & 0xff);
	body[3] = (unsigned char)(st & 0xff);
	body[4] = FCGI_REQUEST_COMPLETE;
	memset(body + 5, 0, 3);
	ac_buf_add(b, body, sizeof(body));
}
