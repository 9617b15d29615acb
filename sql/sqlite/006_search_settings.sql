-- 006: per-chat settings, and the search index.
--
-- system_prompt  the chat's own system prompt (NULL: SYSTEM_PROMPT's)
-- model          the registry alias its sends use when they name none (NULL: the registry's first)
-- pinned         1: listed before the others
-- archived       1: listed only by GET /chats?archived=true
ALTER TABLE chats ADD COLUMN system_prompt TEXT;
ALTER TABLE chats ADD COLUMN model TEXT;
ALTER TABLE chats ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;

CREATE INDEX chats_listed ON chats (user_id, archived, pinned DESC, updated_at DESC, id DESC);

-- The search index (GET /search): one FTS5 row per chat title and per shown message (state < 2,
-- every branch), kept by the triggers below in the writing transaction.  A message's row is its id;
-- a title's is minus its number in search_titles (chats have no integer key of their own).  owner
-- is the user's id as one token ('u' and its hex), so that a search reads the user's entries only
-- (its MATCH names it), however many other users' entries match too.
CREATE TABLE search_titles (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL UNIQUE
);

CREATE VIRTUAL TABLE search_index USING fts5 (
    body,
    owner,
    chat_id UNINDEXED,
    user_id UNINDEXED,
    role UNINDEXED,         -- 'user' or 'assistant'; NULL for a title
    created_at UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER search_chat_insert AFTER INSERT ON chats
BEGIN
    INSERT INTO search_titles (chat_id) VALUES (NEW.id);
    INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
        SELECT -t.id, NEW.title, 'u' || hex(NEW.user_id), NEW.id, NEW.user_id, NULL, NEW.created_at FROM search_titles t
        WHERE t.chat_id = NEW.id AND NEW.title IS NOT NULL;
END;

CREATE TRIGGER search_chat_title AFTER UPDATE OF title ON chats
BEGIN
    DELETE FROM search_index WHERE rowid = -(SELECT id FROM search_titles WHERE chat_id = OLD.id);
    INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
        SELECT -t.id, NEW.title, 'u' || hex(NEW.user_id), NEW.id, NEW.user_id, NULL, NEW.created_at FROM search_titles t
        WHERE t.chat_id = NEW.id AND NEW.title IS NOT NULL;
END;

-- A chat's messages go by their own trigger (ON DELETE CASCADE runs it).
CREATE TRIGGER search_chat_delete AFTER DELETE ON chats
BEGIN
    DELETE FROM search_index WHERE rowid = -(SELECT id FROM search_titles WHERE chat_id = OLD.id);
    DELETE FROM search_titles WHERE chat_id = OLD.id;
END;

CREATE TRIGGER search_message_insert AFTER INSERT ON messages WHEN NEW.state < 2
BEGIN
    INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
        SELECT NEW.id, NEW.content, 'u' || hex(c.user_id), NEW.chat_id, c.user_id, NEW.role, NEW.created_at FROM chats c
        WHERE c.id = NEW.chat_id;
END;

CREATE TRIGGER search_message_update AFTER UPDATE OF content, state, created_at ON messages
BEGIN
    DELETE FROM search_index WHERE rowid = OLD.id;
    INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
        SELECT NEW.id, NEW.content, 'u' || hex(c.user_id), NEW.chat_id, c.user_id, NEW.role, NEW.created_at FROM chats c
        WHERE c.id = NEW.chat_id AND NEW.state < 2;
END;

CREATE TRIGGER search_message_delete AFTER DELETE ON messages WHEN OLD.state < 2
BEGIN
    DELETE FROM search_index WHERE rowid = OLD.id;
END;

-- The data from before.
INSERT INTO search_titles (chat_id) SELECT id FROM chats ORDER BY created_at, id;
INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
    SELECT -t.id, c.title, 'u' || hex(c.user_id), c.id, c.user_id, NULL, c.created_at FROM search_titles t
    JOIN chats c ON c.id = t.chat_id WHERE c.title IS NOT NULL;
INSERT INTO search_index (rowid, body, owner, chat_id, user_id, role, created_at)
    SELECT m.id, m.content, 'u' || hex(c.user_id), m.chat_id, c.user_id, m.role, m.created_at FROM messages m
    JOIN chats c ON c.id = m.chat_id WHERE m.state < 2;
