-- 004: accounts (AUTH=token and AUTH=remote-user) and the login abuse limits.
--
-- users.email is stored trimmed and in lower case, so its unique index compares emails
-- case-insensitively.  password_hash is libsodium's crypto_pwhash_str (argon2id, its own salt and
-- parameters in the string); NULL for an account that never logs in with a password (the web
-- server's REMOTE_USER, an outside identity provider's token).  token_version is carried in every
-- token; logging out adds one, which ends every token issued before.  subject: an outside identity
-- provider's "iss sub" for its users (NULL otherwise).
-- Chats keep their text user_id: an account's chats are those whose user_id is its id; chats from
-- before stay under their old user_id until `ai-chat-fcgi user adopt` gives them to an account.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,          -- UUID v4, lower case
    email         TEXT NOT NULL,
    password_hash TEXT,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    token_version INTEGER NOT NULL DEFAULT 0,
    subject       TEXT,
    created_at    INTEGER NOT NULL
);

CREATE UNIQUE INDEX users_by_email ON users (email);
CREATE UNIQUE INDEX users_by_subject ON users (subject);
CREATE INDEX users_by_created ON users (created_at, id);

-- Failed logins, one row each: kind 'email' (key: the email as stored) or 'addr' (key: REMOTE_ADDR).
-- A login is refused while a key has too many rows younger than the window; a success deletes its
-- email's rows; rows older than the window are deleted as new ones come.
CREATE TABLE login_attempts (
    kind TEXT NOT NULL CHECK (kind IN ('email', 'addr')),
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);

CREATE INDEX login_attempts_by_key ON login_attempts (kind, key, at);
