-- 005: per-user send limits (CHAT_RATE_PER_MINUTE, TOKENS_PER_DAY, CHAT_CONCURRENCY_PER_USER), kept
-- here so that every worker process and host shares them (common/limits.c).
--
-- user_limits  one row per user that has sent: rate_tat is the rate limit's "theoretical arrival
--              time" (GCRA, microseconds since the epoch: sends are refused while it lies more than a
--              minute ahead); tokens counts the provider's tokens (prompt + completion) of the UTC day
--              token_day (days since 1970-01-01).
-- generation_slots  one row per generation running: taken when a send begins, deleted when it ends on
--              every path; a process that dies leaves its rows until "until" (the send's own lock).

CREATE TABLE user_limits (
    user_id   TEXT PRIMARY KEY NOT NULL,
    rate_tat  INTEGER NOT NULL DEFAULT 0,
    token_day INTEGER NOT NULL DEFAULT 0,
    tokens    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE generation_slots (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    until   INTEGER NOT NULL
);

CREATE INDEX generation_slots_by_user ON generation_slots (user_id, until);

-- Leases for work one process at a time does, on every host (retention, RETENTION_DAYS): a process
-- takes a lease by name when it is free or has run out, until "until"; holder names the process.
CREATE TABLE ops_leases (
    name   TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
