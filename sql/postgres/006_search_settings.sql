-- 006: per-chat settings, and the search index (as sql/sqlite/006_search_settings.sql, which says
-- what each setting means).
ALTER TABLE chats ADD COLUMN system_prompt bytea;   -- user text is bytea (001_init.sql)
ALTER TABLE chats ADD COLUMN model text;
ALTER TABLE chats ADD COLUMN pinned integer NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN archived integer NOT NULL DEFAULT 0;

CREATE INDEX chats_listed ON chats (user_id, archived, pinned DESC, updated_at DESC, id DESC);

-- The search index (GET /search): a tsvector of each title and of each message, a generated column
-- (so it is written in the writing transaction, and built here for the rows from before), under a
-- GIN index.  The configuration ac_search is 'simple' (no stemming, no stop words: any language)
-- with diacritics removed by the unaccent extension (trusted: a database owner may create it; one
-- made already, in whatever schema, is used).  A user who may not create it gets 'simple' alone:
-- the search then tells "é" from "e".
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS unaccent;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'unaccent is not available to this user: the search keeps diacritics';
END
$$;
CREATE TEXT SEARCH CONFIGURATION ac_search (COPY = simple);
DO $$
DECLARE
    dict text;
BEGIN
    SELECT quote_ident(n.nspname) || '.' || quote_ident(d.dictname) INTO dict FROM pg_ts_dict d
        JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE d.dictname = 'unaccent' LIMIT 1;
    IF dict IS NOT NULL THEN
        EXECUTE 'ALTER TEXT SEARCH CONFIGURATION ac_search ALTER MAPPING FOR asciiword, asciihword, '
            'hword_asciipart, word, hword, hword_part WITH ' || dict || ', simple';
    END IF;
END
$$;

-- Titles and contents are bytea (UTF-8 from the API, NUL included): as text for the search.  A NUL
-- has no place in text; such a rare value is searched in its escaped form (its ASCII words found).
-- Immutable: the database's encoding never changes.
CREATE FUNCTION ac_search_text(b bytea) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN position('\x00'::bytea IN b) = 0 THEN convert_from(b, 'UTF8') ELSE encode(b, 'escape') END
$$;

ALTER TABLE chats ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('ac_search', coalesce(ac_search_text(title), ''))) STORED;
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('ac_search', ac_search_text(content))) STORED;

CREATE INDEX chats_search ON chats USING gin (search);
-- Shown messages only (state < 2), as the search reads them.
CREATE INDEX messages_search ON messages USING gin (search) WHERE state < 2;
