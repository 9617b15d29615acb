-- 003: messages form a tree, and every reply knows the message it answers (as sql/sqlite/003_tree.sql,
-- which says what each column means).  message_count counts the shown messages of the active path;
-- the repository keeps it, so the triggers go.

ALTER TABLE messages ADD COLUMN parent_id bigint REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE messages ADD COLUMN active integer NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN state integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN locked_until bigint NOT NULL DEFAULT 0;

-- Chats from before: a single path, each message following the one before it.
UPDATE messages SET state = 1 WHERE incomplete = 1;
UPDATE messages SET parent_id = (SELECT max(p.id) FROM messages p WHERE p.chat_id = messages.chat_id
    AND p.id < messages.id);

CREATE INDEX messages_by_parent ON messages (chat_id, parent_id, id);
-- The shown messages of the active path (a page reads this, and whether more lie past it from it alone).
CREATE INDEX messages_on_path ON messages (chat_id, id) WHERE active = 1 AND state < 2;

DROP TRIGGER messages_count_insert ON messages;
DROP TRIGGER messages_count_delete ON messages;
DROP FUNCTION messages_count();

-- A key's reply_message_id is now the reply row of its send (in whatever state), set when the send
-- begins; locked_until moved to that row.
UPDATE idempotency_keys SET locked_until = 0;
