-- 007: personal API keys (AUTH=token): long-lived bearer credentials "sk-...", each an account's.
--
-- The key itself is never stored: key_hash is the hex BLAKE2b-256 of the whole key (libsodium's
-- crypto_generichash; a key is 32 random bytes, so a fast hash is right, not a password hash), and a
-- request's key is found by its hash.  prefix is the key's first characters ("sk-" and 8 more), not
-- secret, shown in lists so that keys can be told apart.  A revoked key's row is deleted, so every
-- process and host refuses it at once; an account's keys go with it (ON DELETE CASCADE).
-- last_used_at: microseconds since the epoch, moved on at most once a minute (NULL: never used).

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,            -- UUID v4, lower case
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
