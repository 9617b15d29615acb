-- 002: what the model said, and idempotent sends.

-- The provider's model id and token usage of an assistant reply; incomplete = 1 when the reply was
-- cut short (the client went away mid-stream, or the provider failed mid-reply).
ALTER TABLE messages ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER;
ALTER TABLE messages ADD COLUMN completion_tokens INTEGER;
ALTER TABLE messages ADD COLUMN incomplete INTEGER NOT NULL DEFAULT 0;

-- POST /chat with an Idempotency-Key header: the message it stored and, once answered, the reply.
-- A key is the user's for 24 hours; locked_until keeps a repeat from running while the first runs.
CREATE TABLE idempotency_keys (
    user_id          TEXT NOT NULL,
    key              TEXT NOT NULL,
    chat_id          TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    reply_message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    locked_until     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_by_reply ON idempotency_keys (reply_message_id);
CREATE INDEX idempotency_keys_by_message ON idempotency_keys (user_message_id);
