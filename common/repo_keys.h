/*
 * Personal API keys (common/repo_keys.c): long-lived bearer credentials "sk-" + 43 base64url
 * characters (32 random bytes), each an account's.  Only a hash of a key is stored (BLAKE2b-256 by
 * libsodium: a key is high-entropy, so a fast hash is right, not argon2), and a request's key is
 * found by its hash; a revoked key's row is gone, so every process and host refuses it at once (no
 * process remembers a key).  No comparison ever touches the key itself: the index compares hashes,
 * and the time that takes says nothing an attacker could use of a key he does not have (a preimage).
 * The storage is written once over db.h, like the rest of the repository.
 */
#ifndef AC_REPO_KEYS_H
#define AC_REPO_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"
#include "repo_users.h"

#define AC_KEY_LEN 46			/* "sk-" and 43 base64url characters */
#define AC_KEY_PREFIX_LEN 11		/* "sk-" and 8: shown in lists, not secret */
#define AC_KEY_HASH_LEN 64		/* hex */
#define AC_KEYS_PER_USER_MAX 100
#define AC_KEY_NAME_MAX 200		/* characters */

/* Whether a bearer credential is meant as an API key (begins "sk-"), well-formed or not. */
bool ac_key_like(const char *token, size_t len);
/* Whether it is one as ac_key_new makes them. */
bool ac_key_valid(const char *token, size_t len);
/* A new random key (libsodium must be initialised: ac_auth_init); out gets AC_KEY_LEN bytes and a NUL. */
void ac_key_new(char out[AC_KEY_LEN + 1]);
/* The stored hash of a key: hex BLAKE2b-256, AC_KEY_HASH_LEN characters and a NUL. */
void ac_key_hash(const char *key, size_t len, char out[AC_KEY_HASH_LEN + 1]);

struct ac_api_key {
	struct ac_str id;
	struct ac_str user_id;
	struct ac_str name;
	struct ac_str prefix;
	int64_t created_at;		/* microseconds since the epoch */
	int64_t last_used_at;		/* 0: never used */
};

typedef enum ac_err (*ac_api_key_fn)(void *arg, const struct ac_api_key *k);

/* Stores a key of user_id (by its hash and prefix): AC_ENOTFOUND when there is no such account,
 * AC_ETOOBIG when it has AC_KEYS_PER_USER_MAX already. */
enum ac_err ac_repo_key_create(struct ac_repo *r, struct ac_str user_id, struct ac_str name, struct ac_str prefix,
    struct ac_str hash, ac_api_key_fn fn, void *arg);
/* The keys of user_id, oldest first (none: AC_OK). */
enum ac_err ac_repo_key_list(struct ac_repo *r, struct ac_str user_id, ac_api_key_fn fn, void *arg);
/* Revokes key_id of user_id: AC_ENOTFOUND when user_id has no such key (another's included). */
enum ac_err ac_repo_key_delete(struct ac_repo *r, struct ac_str user_id, struct ac_str key_id);
/* The account whose key has this hash, handed to fn (AC_ENOTFOUND: no such key); notes the use
 * (last_used_at, at most once a minute). */
enum ac_err ac_repo_key_user(struct ac_repo *r, struct ac_str hash, ac_user_fn fn, void *arg);

#endif
