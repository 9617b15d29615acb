/* A connection's read deadline (watch.h): armed around libfcgi's blocking reads, cut by the main thread. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/util.h"
#include "server.h"
#include "watch.h"

_Thread_local struct ac_watch *ac_my_watch;

void
ac_watch_init(struct ac_watch *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	w->fd = -1;
}

bool
ac_watch_open(struct ac_watch *w, int fd, int64_t read_deadline)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (copy < 0)
		return false;
	pthread_mutex_lock(&w->mu);
	w->fd = copy;
	w->armed = false;
	w->read_deadline = read_deadline;
	pthread_mutex_unlock(&w->mu);
	return true;
}

void
ac_watch_arm(struct ac_watch *w, int64_t deadline, bool records)
{
	int64_t now = ac_mono_us();

	pthread_mutex_lock(&w->mu);
	w->armed = true;
	w->records = records;
	w->armed_at = now;
	w->deadline = deadline;
	pthread_mutex_unlock(&w->mu);
}

void
ac_watch_disarm(struct ac_watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->armed = false;
	pthread_mutex_unlock(&w->mu);
}

void
ac_watch_close(struct ac_watch *w)
{
	int fd;

	pthread_mutex_lock(&w->mu);
	fd = w->fd;
	w->fd = -1;
	w->armed = false;
	pthread_mutex_unlock(&w->mu);
	if (fd >= 0)
		close(fd);
}

bool
ac_watch_cut(struct ac_watch *w, int64_t now, int64_t tick_us, bool stop)
{
	bool cut = false;

	pthread_mutex_lock(&w->mu);
	if (w->armed && w->fd >= 0 && ((now >= w->deadline && now - w->armed_at >= tick_us) || (stop && w->records))) {
		(void)shutdown(w->fd, SHUT_RDWR);
		w->armed = false;
		cut = true;
	}
	pthread_mutex_unlock(&w->mu);
	return cut;
}

int64_t
ac_server_read_begin(void)
{
	struct ac_watch *w = ac_my_watch;

	if (w == NULL)
		return 0;
	if (w->fd >= 0)
		ac_watch_arm(w, w->read_deadline, false);
	return w->read_deadline;
}

void
ac_server_read_end(void)
{
	struct ac_watch *w = ac_my_watch;

	if (w != NULL && w->fd >= 0)
		ac_watch_disarm(w);
}

