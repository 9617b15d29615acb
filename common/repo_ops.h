/*
 * The repository's operations side (common/repo_ops.c): the automatic title of a chat, and retention
 * (deleting chats not updated for RETENTION_DAYS, one process at a time under a lock kept in the
 * database).  Written once over db.h, as the rest of the repository.
 */
#ifndef AC_REPO_OPS_H
#define AC_REPO_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"

/*
 * The first exchange of an untitled chat of the user: its two shown messages (the user's, then the
 * reply), oldest first, handed to fn (id, role and content set); AC_ENOTFOUND when the chat is not
 * the user's, has a title, or holds anything but that one exchange.
 */
enum ac_err ac_repo_first_exchange(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    ac_message_fn fn, void *arg);

/* Sets the chat's title only if it has none (never over a title set meanwhile), moving updated_at;
 * *set says whether it did. */
enum ac_err ac_repo_chat_title_if_none(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id,
    struct ac_str title, int64_t now, bool *set);

/*
 * Retention: deletes the chats (their messages, keys with them) not updated since before cutoff
 * (microseconds since the epoch), at most batch of them, oldest first.  Only the holder of the
 * database's retention lease deletes: a process takes it when it is free or has run out (until
 * now + lease_us), so that one process at a time, on every host, runs it.  With prune (a run's first
 * batch), the per-user limit rows that hold nothing current and expired generation slots go too.
 * *ran says whether this one held the lease; *chats and *messages count what went.
 */
enum ac_err ac_repo_retention(struct ac_repo *r, const char *holder, int64_t now, int64_t lease_us,
    int64_t cutoff, int64_t batch, bool prune, bool *ran, int64_t *chats, int64_t *messages);

#endif
