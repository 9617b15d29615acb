-- 002: what the model said, and idempotent sends (as sql/sqlite/002_replies.sql).

-- The provider's model id and token usage of an assistant reply; incomplete = 1 when the reply was
-- cut short (the client went away mid-stream, or the provider failed mid-reply).
ALTER TABLE messages ADD COLUMN model bytea;
ALTER TABLE messages ADD COLUMN prompt_tokens bigint;
ALTER TABLE messages ADD COLUMN completion_tokens bigint;
ALTER TABLE messages ADD COLUMN incomplete integer NOT NULL DEFAULT 0;

-- POST /chat with an Idempotency-Key header: the message it stored and, once answered, the reply.
-- A key is the user's for 24 hours; locked_until keeps a repeat from running while the first runs.
-- The primary key is what makes the same key sent to two hosts at once store one message.
CREATE TABLE idempotency_keys (
    user_id          bytea NOT NULL,
    key              bytea NOT NULL,
    chat_id          bytea NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_message_id  bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    reply_message_id bigint REFERENCES messages (id) ON DELETE SET NULL,
    locked_until     bigint NOT NULL,
    created_at       bigint NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_by_reply ON idempotency_keys (reply_message_id);
CREATE INDEX idempotency_keys_by_message ON idempotency_keys (user_message_id);
