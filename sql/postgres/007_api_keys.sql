-- 007: personal API keys (as sql/sqlite/007_api_keys.sql, which says what each column means).
-- Text from users is bytea, as in 001.

CREATE TABLE api_keys (
    id           bytea PRIMARY KEY,                    -- UUID v4, lower case
    user_id      bytea NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         bytea NOT NULL,
    prefix       text NOT NULL,
    key_hash     text NOT NULL,
    created_at   bigint NOT NULL,
    last_used_at bigint
);

CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
