/*
 * Rendered message pages, kept per process: GET /chats/{id}/messages is a function of the chat's
 * version (ac_repo_chat_version, the ETag) and the page asked for, so a page rendered once is
 * answered again without reading the messages while the version stands.  A version never comes back
 * once a write moved it on: an entry can only be hit while the chat is exactly as it was rendered
 * (and one rendered from a state newer than its key, after a write that raced the render, is never
 * hit).  Bounded by PAGE_CACHE_BYTES, least recently used out first; 0 turns it off.
 */
#ifndef AC_PAGES_H
#define AC_PAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"

struct ac_page_key {
	struct ac_str chat_id;	/* at most 64 bytes */
	int64_t version;
	int64_t limit;
	int64_t cursor;
	bool backward;
};

void ac_pages_init(size_t max_bytes);
/* Appends the page's body to out and sets *more when it is kept; false when it is not. */
bool ac_pages_get(const struct ac_page_key *k, struct ac_buf *out, bool *more);
/* Keeps a rendered page (a copy; a page over an eighth of the cache is not kept). */
void ac_pages_put(const struct ac_page_key *k, const char *body, size_t len, bool more);

#endif
