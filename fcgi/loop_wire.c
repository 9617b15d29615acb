/*
 * The event loop's parked connections (loop_impl.h): what is queued for the web server, in framed
 * records, written only as far as the connection takes it (a bounded queue: a client that stops
 * reading past CLIENT_QUEUE_BYTES is dropped); what the web server sends, dropped; and the end of
 * the connection, kept for the next request or closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "loop_impl.h"
#include "record.h"
#include "server.h"

#define DISCARD_MAX (64 * 1024)	/* bytes read (and dropped) from a parked connection per event */
#define WIRE_KEEP (16 * 1024)	/* a parked request's queue shrinks back to this once written */

void
ac_park_epoll_set(struct ac_park *k)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (k->want_out ? EPOLLOUT : 0), .data.ptr = k };

	if (k->fd < 0)
		return;
	if (epoll_ctl(ac_evloop.ep, k->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, k->fd, &ev) == 0)
		k->in_epoll = true;
	else
		ac_log(AC_LOG_ERROR, "event loop: epoll_ctl: %s", strerror(errno));
}

void
ac_park_epoll_forget(struct ac_park *k)
{
	if (k->in_epoll && k->fd >= 0)
		(void)epoll_ctl(ac_evloop.ep, EPOLL_CTL_DEL, k->fd, NULL);
	k->in_epoll = false;
	k->want_out = false;
}

void
ac_park_close_fd(struct ac_park *k)
{
	if (k->fd < 0)
		return;
	ac_park_epoll_forget(k);
	close(k->fd);
	k->fd = -1;
}

/*
 * The client left (the connection closed, a write failed) or is dropped (past the queue's bound).
 * Its call is cancelled, and what came is stored by the finish.  From a hook inside curl's
 * callbacks only the connection is closed: the hook's error then stops the transfer itself.
 */
bool
ac_park_gone(struct ac_park *k, bool in_callback)
{
	if (!k->gone) {
		k->gone = true;
		ac_park_close_fd(k);
	}
	if (in_callback)
		return false;
	if (k->state == P_RUNNING || k->state == P_WAITING) {
		ac_loop_transfer_remove(k);
		ac_provider_cancel(k->p, "the client went away");
		ac_loop_to_pool(k);
		return true;	/* the pool's now: not to be touched here */
	}
	return false;
}

/* The connection's end: kept for the web server's next request, or closed. */
void
ac_park_close(struct ac_park *k)
{
	ac_loop_list_remove(k);
	if (k->fd >= 0) {
		if (k->abort) {
			/* A record nginx cannot parse: it drops the client's connection instead of ending the
			 * response as if it were whole (server.c's abort_connection; best effort here). */
			static const unsigned char bad_record[8] = { 0 };

			if (write(k->fd, bad_record, sizeof(bad_record)) != (ssize_t)sizeof(bad_record))
				ac_log(AC_LOG_DEBUG, "a cut-short answer's end did not fit its connection");
			(void)shutdown(k->fd, SHUT_RDWR);
			ac_park_close_fd(k);
		} else if (k->keep && atomic_load(&ac_evloop.drain_at) == 0) {
			int fd = k->fd;

			ac_park_epoll_forget(k);
			k->fd = -1;
			(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			ac_server_keep(fd);
		} else {
			ac_park_close_fd(k);
		}
	}
	k->state = P_DONE;
	k->at_loop = false;
	k->qnext = ac_evloop.done;
	ac_evloop.done = k;
}

/* Writes what is queued, as far as the connection takes it. */
void
ac_park_flush(struct ac_park *k)
{
	if (k->fd < 0)
		return;
	while (k->wire_off < k->wire.len) {
		ssize_t n = write(k->fd, k->wire.data + k->wire_off, k->wire.len - k->wire_off);

		if (n > 0) {
			k->wire_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!k->want_out && k->in_epoll) {
				k->want_out = true;
				ac_park_epoll_set(k);
			}
			return;
		}
		ac_park_gone(k, true);	/* EPIPE, ECONNRESET: the web server closed it */
		return;
	}
	k->wire_off = 0;
	ac_buf_reset(&k->wire, WIRE_KEEP);
	if (k->want_out) {
		k->want_out = false;
		ac_park_epoll_set(k);
	}
}

/* Room for n more queued bytes: the queue's bound, past which a client that does not read is dropped. */
static bool
wire_room(struct ac_park *k, size_t n)
{
	if (k->gone)
		return false;
	if (k->wire_off > 0 && k->wire_off >= k->wire.len / 2) {
		memmove(k->wire.data, k->wire.data + k->wire_off, k->wire.len - k->wire_off);
		k->wire.len -= k->wire_off;
		k->wire_off = 0;
	}
	if (k->wire.len - k->wire_off + n > ac_evloop.cfg->client_queue_bytes) {
		ac_log(AC_LOG_WARN, "a client that stopped reading was dropped: %zu bytes waited for it "
		    "(CLIENT_QUEUE_BYTES)", k->wire.len - k->wire_off);
		k->gone = true;
		if (k->at_loop)
			ac_park_close_fd(k);
		return false;
	}
	return true;
}

static enum ac_err
queued(struct ac_park *k)
{
	if (ac_buf_err(&k->wire) != AC_OK) {
		k->gone = true;
		return AC_EIO;
	}
	if (k->at_loop)
		ac_park_flush(k);
	return k->gone ? AC_EIO : AC_OK;
}

enum ac_err
ac_park_write(struct ac_park *k, const char *data, size_t len)
{
	if (len == 0)
		return k->gone ? AC_EIO : AC_OK;
	if (!wire_room(k, ac_fcgi_record_size(len) + AC_FCGI_HEADER_LEN * (len / AC_FCGI_CONTENT_MAX)))
		return AC_EIO;
	ac_fcgi_stdout(&k->wire, k->request_id, data, len);
	return queued(k);
}

/* What comes before an event's data: ": " (a comment), "data: " (unnamed), "event: NAME\ndata: ". */
static void
sse_prefix(struct ac_buf *b, const char *event)
{
	if (event == NULL) {
		ac_buf_add(b, ": ", 2);
	} else if (event[0] == '\0') {
		ac_buf_add(b, "data: ", 6);
	} else {
		ac_buf_add(b, "event: ", 7);
		ac_buf_adds(b, event);
		ac_buf_add(b, "\ndata: ", 7);
	}
}

enum ac_err
ac_park_sse(struct ac_park *k, const char *event, const char *data, size_t len)
{
	struct ac_buf *w = &k->wire;
	/* ": " a comment; "data: " an unnamed event; else "event: NAME\ndata: " */
	size_t pre = event == NULL ? 2 : event[0] == '\0' ? 6 : 7 + strlen(event) + 7;
	size_t n = pre + len + 2;
	size_t pad = ((n + 7) & ~(size_t)7) - n;
	unsigned char h[AC_FCGI_HEADER_LEN] = { 1, 6, 0, 0, 0, 0, 0, 0 };	/* FCGI_STDOUT */
	static const char zeros[8] = { 0 };

	if (n > AC_FCGI_CONTENT_MAX - 7) {
		/* A large event (a replayed reply, a large delta): as ordinary stdout, in several records. */
		struct ac_buf tmp;
		enum ac_err err;

		ac_buf_init(&tmp, n + 1);
		sse_prefix(&tmp, event);
		ac_buf_add(&tmp, data, len);
		ac_buf_add(&tmp, "\n\n", 2);
		err = ac_buf_err(&tmp) == AC_OK ? ac_park_write(k, tmp.data, tmp.len) : AC_EIO;
		ac_buf_free(&tmp);
		return err;
	}
	if (!wire_room(k, AC_FCGI_HEADER_LEN + n + pad))
		return AC_EIO;
	h[2] = (unsigned char)((k->request_id >> 8) & 0xff);
	h[3] = (unsigned char)(k->request_id & 0xff);
	h[4] = (unsigned char)((n >> 8) & 0xff);
	h[5] = (unsigned char)(n & 0xff);
	h[6] = (unsigned char)pad;
	ac_buf_add(w, h, sizeof(h));
	sse_prefix(w, event);
	ac_buf_add(w, data, len);	/* one line: JSON escapes newlines */
	ac_buf_add(w, "\n\n", 2);
	ac_buf_add(w, zeros, pad);
	return queued(k);
}

/* A request answered (back from the pool): written out, ended, closed. */
void
ac_park_closing(struct ac_park *k)
{
	k->at_loop = true;
	k->close_by = ac_mono_us() + CLOSE_GRACE_US;
	ac_loop_list_add(k);
	if (k->fd >= 0 && !k->gone && !k->abort && !k->ended) {
		ac_fcgi_end(&k->wire, k->request_id, 0);
		k->ended = true;
		if (ac_buf_err(&k->wire) != AC_OK)
			k->gone = true;
	}
	if (k->gone)
		ac_park_close_fd(k);
	if (k->fd >= 0) {
		ac_park_epoll_set(k);
		ac_park_flush(k);
	}
	if (k->fd < 0 || k->wire_off >= k->wire.len)
		ac_park_close(k);
}

/* The parked connection is readable, writable or closed. */
void
ac_park_io(struct ac_park *k, uint32_t events)
{
	if (events & EPOLLIN) {
		/* Nothing more is expected of the web server on this connection (nginx never sends
		 * FCGI_ABORT_REQUEST, and the request's records were read): what comes is dropped, and the
		 * end of the stream means the client left. */
		char trash[4096];
		size_t total = 0;

		while (total < DISCARD_MAX && k->fd >= 0) {
			ssize_t n = read(k->fd, trash, sizeof(trash));

			if (n > 0) {
				total += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (ac_park_gone(k, false))
				return;
			break;
		}
	}
	if (k->fd >= 0 && (events & (EPOLLERR | EPOLLHUP)) && ac_park_gone(k, false))
		return;
	if (k->fd >= 0 && (events & EPOLLOUT))
		ac_park_flush(k);
	if (k->gone && ac_park_gone(k, false))
		return;
	if (k->state == P_CLOSING && (k->fd < 0 || k->wire_off >= k->wire.len))
		ac_park_close(k);
}

