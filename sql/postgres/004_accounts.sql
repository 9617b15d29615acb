-- 004: accounts and the login abuse limits (as sql/sqlite/004_accounts.sql, which says what each
-- column means).  Text from users is bytea, as in 001.

CREATE TABLE users (
    id            bytea PRIMARY KEY,                  -- UUID v4, lower case
    email         bytea NOT NULL,
    password_hash bytea,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    token_version bigint NOT NULL DEFAULT 0,
    subject       bytea,
    created_at    bigint NOT NULL
);

CREATE UNIQUE INDEX users_by_email ON users (email);
CREATE UNIQUE INDEX users_by_subject ON users (subject);
CREATE INDEX users_by_created ON users (created_at, id);

CREATE TABLE login_attempts (
    kind text NOT NULL CHECK (kind IN ('email', 'addr')),
    key  bytea NOT NULL,
    at   bigint NOT NULL
);

CREATE INDEX login_attempts_by_key ON login_attempts (kind, key, at);
