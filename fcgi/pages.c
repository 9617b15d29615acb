/* The page cache (pages.h): a hash table of entries on one least-recently-used list, one lock. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pages.h"

#define BUCKETS 4096
#define CHAT_ID_MAX 64
#define BODY_MAX (128 * 1024)	/* larger pages are not kept (nor answered in one piece) */

struct entry {
	struct entry *hnext;		/* in its bucket */
	struct entry *prev, *next;	/* the LRU list: most recent first */
	char chat_id[CHAT_ID_MAX];
	size_t chat_id_len;
	int64_t version, limit, cursor;
	bool backward;
	bool more;
	size_t len;
	char body[];
};

static struct {
	pthread_mutex_t mu;
	size_t max, used;
	struct entry *buckets[BUCKETS];
	struct entry *head, *tail;
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

void
ac_pages_init(size_t max_bytes)
{
	cache.max = max_bytes;
}

static unsigned
hash(const struct ac_page_key *k)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < k->chat_id.len; i++)
		h = (h ^ (unsigned char)k->chat_id.ptr[i]) * 1099511628211ULL;
	h ^= (uint64_t)k->version * 0x9e3779b97f4a7c15ULL;
	h ^= (uint64_t)k->limit * 31 + (uint64_t)k->cursor * 131 + (k->backward ? 7 : 0);
	return (unsigned)(h % BUCKETS);
}

static bool
same(const struct entry *e, const struct ac_page_key *k)
{
	return e->version == k->version && e->limit == k->limit && e->cursor == k->cursor &&
	    e->backward == k->backward && e->chat_id_len == k->chat_id.len &&
	    memcmp(e->chat_id, k->chat_id.ptr, k->chat_id.len) == 0;
}

static void
lru_unlink(struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		cache.head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		cache.tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_front(struct entry *e)
{
	e->prev = NULL;
	e->next = cache.head;
	if (cache.head != NULL)
		cache.head->prev = e;
	cache.head = e;
	if (cache.tail == NULL)
		cache.tail = e;
}

/* Drops the least recently used entry (the lock held). */
static void
evict_one(void)
{
	struct entry *e = cache.tail, **pp;
	struct ac_page_key k;

	if (e == NULL)
		return;
	k.chat_id.ptr = e->chat_id;
	k.chat_id.len = e->chat_id_len;
	k.version = e->version;
	k.limit = e->limit;
	k.cursor = e->cursor;
	k.backward = e->backward;
	for (pp = &cache.buckets[hash(&k)]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	lru_unlink(e);
	cache.used -= sizeof(*e) + e->len;
	free(e);
}

bool
ac_pages_get(const struct ac_page_key *k, struct ac_buf *out, bool *more)
{
	bool hit = false;

	if (cache.max == 0 || k->chat_id.len > CHAT_ID_MAX)
		return false;
	pthread_mutex_lock(&cache.mu);
	for (struct entry *e = cache.buckets[hash(k)]; e != NULL; e = e->hnext) {
		if (same(e, k)) {
			ac_buf_add(out, e->body, e->len);
			*more = e->more;
			lru_unlink(e);
			lru_front(e);
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&cache.mu);
	return hit && ac_buf_err(out) == AC_OK;
}

void
ac_pages_put(const struct ac_page_key *k, const char *body, size_t len, bool more)
{
	struct entry *e;
	unsigned b;

	if (cache.max == 0 || k->chat_id.len > CHAT_ID_MAX || len > BODY_MAX || sizeof(*e) + len > cache.max / 8)
		return;
	e = malloc(sizeof(*e) + len);
	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
	memcpy(e->chat_id, k->chat_id.ptr, k->chat_id.len);
	e->chat_id_len = k->chat_id.len;
	e->version = k->version;
	e->limit = k->limit;
	e->cursor = k->cursor;
	e->backward = k->backward;
	e->more = more;
	e->len = len;
	memcpy(e->body, body, len);
	b = hash(k);
	pthread_mutex_lock(&cache.mu);
	for (struct entry *o = cache.buckets[b]; o != NULL; o = o->hnext) {
		if (same(o, k)) {	/* rendered meanwhile by another thread */
			pthread_mutex_unlock(&cache.mu);
			free(e);
			return;
		}
	}
	while (cache.used + sizeof(*e) + len > cache.max && cache.tail != NULL)
		evict_one();
	e->hnext = cache.buckets[b];
	cache.buckets[b] = e;
	lru_front(e);
	cache.used += sizeof(*e) + len;
	pthread_mutex_unlock(&cache.mu);
}
