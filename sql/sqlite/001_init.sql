-- 001: chats and their messages.
-- Timestamps are integers: microseconds since 1970-01-01 UTC (formatted as ISO 8601 on output).
-- message_count is kept by triggers, so listing chats never counts rows.

CREATE TABLE chats (
    id            TEXT PRIMARY KEY NOT NULL,          -- UUID v4, lower case
    user_id       TEXT NOT NULL,
    title         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX chats_by_user ON chats (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,     -- never reused, so ids work as paging cursors
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX messages_by_chat ON messages (chat_id, id);

CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
BEGIN
    UPDATE chats SET message_count = message_count + 1 WHERE id = NEW.chat_id;
END;

CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
BEGIN
    UPDATE chats SET message_count = message_count - 1 WHERE id = OLD.chat_id;
END;
