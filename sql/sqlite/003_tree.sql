-- 003: messages form a tree, and every reply knows the message it answers.
--
-- parent_id  the message this one follows (NULL for a chat's first message).  A reply's parent is
--            the user message it answers; alternatives (regenerated replies, edited messages) are
--            siblings: children of one parent.
-- active     1 on the chat's active path: the one path from a root that is shown and that the model
--            is given as context.  Along a path ids grow, so the active path is the chat's rows with
--            active = 1 in id order.
-- state      0 stored (a user message, or a complete reply), 1 incomplete (a reply cut short),
--            2 generating (the model is answering until locked_until, microseconds since the epoch),
--            3 failed (nothing came).  Rows in state 2 and 3 are not shown; a failed row keeps its
--            place in the tree, so a retry can answer there.
-- message_count counts the shown messages of the active path; the repository keeps it.

ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;

-- Chats from before: a single path, each message following the one before it.
UPDATE messages SET state = 1 WHERE incomplete = 1;
UPDATE messages SET parent_id = (SELECT max(p.id) FROM messages p WHERE p.chat_id = messages.chat_id
    AND p.id < messages.id);

CREATE INDEX messages_by_parent ON messages (chat_id, parent_id, id);
-- The shown messages of the active path (a page reads this, and whether more lie past it from it alone).
CREATE INDEX messages_on_path ON messages (chat_id, id) WHERE active = 1 AND state < 2;

DROP TRIGGER messages_count_insert;
DROP TRIGGER messages_count_delete;

-- A key's reply_message_id is now the reply row of its send (in whatever state), set when the send
-- begins; locked_until moved to that row.
UPDATE idempotency_keys SET locked_until = 0;
