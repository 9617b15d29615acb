/*
 * FastCGI records written by the event loop itself (libfcgi's writes block).  The loop writes only
 * what a responder answers with once the request has been read: FCGI_STDOUT records, and the
 * FCGI_END_REQUEST that ends the request.  Everything else (reading the request's records) stays
 * libfcgi's.
 */
#ifndef AC_RECORD_H
#define AC_RECORD_H

#include <stddef.h>

#include "../common/buf.h"

#define AC_FCGI_HEADER_LEN 8
#define AC_FCGI_CONTENT_MAX 65535	/* a record's content length is 16 bits */

/* Appends len bytes of a response's stdout as FCGI_STDOUT records (none for len 0: an empty one would
 * end the stream), each padded to a multiple of 8 bytes. */
void ac_fcgi_stdout(struct ac_buf *b, int request_id, const char *data, size_t len);

/* Appends the end of the response: the empty FCGI_STDOUT record, then FCGI_END_REQUEST with
 * app_status and FCGI_REQUEST_COMPLETE. */
void ac_fcgi_end(struct ac_buf *b, int request_id, int app_status);

/* The bytes a record of content_len bytes takes, padding and header included. */
size_t ac_fcgi_record_size(size_t content_len);

#endif
