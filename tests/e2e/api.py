"""What the API promises (README), as helpers shared by the tests."""

import calendar
import contextlib
import json
import re
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$")
CHAT_KEYS = {"id", "user_id", "title", "created_at", "updated_at", "message_count", "system_prompt", "model", "pinned",
             "archived"}
MESSAGE_KEYS = {"id", "chat_id", "role", "content", "created_at", "parent_id", "sibling_ids"}

NOT_FOUND = {"detail": "Not Found"}
METHOD_NOT_ALLOWED = {"detail": "Method Not Allowed"}
UNSUPPORTED_MEDIA_TYPE = {"detail": "Unsupported Media Type: send application/json"}
MALFORMED_PATH = {"detail": "Bad request"}  # nginx refuses it before the worker sees it
DEFAULT_MAX_BODY = 1048576


def chat_not_found(chat_id):
    return {"detail": f"Chat with id '{chat_id}' not found"}


def too_large(limit):
    return {"detail": f"Request body too large: the limit is {limit} bytes"}


# -- 422 entries (FastAPI's list form)

def missing(*loc):
    return {"loc": list(loc), "msg": "field required", "type": "value_error.missing"}


def none_not_allowed(*loc):
    return {"loc": list(loc), "msg": "none is not an allowed value", "type": "type_error.none.not_allowed"}


def str_expected(*loc):
    return {"loc": list(loc), "msg": "str type expected", "type": "type_error.str"}


def not_a_dict(*loc):
    return {"loc": list(loc), "msg": "value is not a valid dict", "type": "type_error.dict"}


def too_short(limit, *loc):
    return {"loc": list(loc), "msg": f"ensure this value has at least {limit} characters",
            "type": "value_error.any_str.min_length", "ctx": {"limit_value": limit}}


def too_long(limit, *loc):
    return {"loc": list(loc), "msg": f"ensure this value has at most {limit} characters",
            "type": "value_error.any_str.max_length", "ctx": {"limit_value": limit}}


def not_integer(*loc):
    return {"loc": list(loc), "msg": "value is not a valid integer", "type": "type_error.integer"}


def not_ge(limit, *loc):
    return {"loc": list(loc), "msg": f"ensure this value is greater than or equal to {limit}",
            "type": "value_error.number.not_ge", "ctx": {"limit_value": limit}}


def not_le(limit, *loc):
    return {"loc": list(loc), "msg": f"ensure this value is less than or equal to {limit}",
            "type": "value_error.number.not_le", "ctx": {"limit_value": limit}}


def not_bool(*loc):
    return {"loc": list(loc), "msg": "value could not be parsed to a boolean", "type": "type_error.bool"}


# -- assertions

def expect(stack, method, path, status, want=None, **kwargs):
    """Sends a request, asserts the status, JSON Content-Type and (when given) the exact decoded body want.
    Returns (headers, decoded body)."""
    got_status, headers, data = stack.json(method, path, **kwargs)
    assert got_status == status, f"{method} {path}: status {got_status}, wanted {status}; body {data!r}"
    if want is not None:
        assert data == want, f"{method} {path}: body\n  {data!r}\nwanted\n  {want!r}"
    return headers, data


def _entry_key(entry):
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def expect_422(stack, method, path, entries, **kwargs):
    """A 422 whose detail lists exactly these entries (in any order)."""
    _, data = expect(stack, method, path, 422, **kwargs)
    assert isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], list), \
        f"{method} {path}: 422 body is not {{'detail': [...]}}: {data!r}"
    got = sorted(map(_entry_key, data["detail"]))
    want = sorted(map(_entry_key, entries))
    assert got == want, f"{method} {path}: 422 detail\n  {data['detail']!r}\nwanted\n  {entries!r}"
    return data


def expect_jsondecode_422(stack, method, path, **kwargs):
    """A 422 for a body that is not valid JSON: one entry, loc ["body", <byte offset>]."""
    _, data = expect(stack, method, path, 422, **kwargs)
    detail = data.get("detail") if isinstance(data, dict) else None
    assert isinstance(detail, list) and len(detail) == 1, f"want one 422 entry, got {data!r}"
    entry = detail[0]
    assert entry.get("type") == "value_error.jsondecode", f"type is not value_error.jsondecode: {entry!r}"
    loc = entry.get("loc")
    assert isinstance(loc, list) and len(loc) == 2 and loc[0] == "body" and type(loc[1]) is int \
        and loc[1] >= 0, f"loc is not ['body', <byte offset>]: {entry!r}"
    assert isinstance(entry.get("msg"), str) and entry["msg"], f"msg is not a message: {entry!r}"
    assert set(entry) <= {"loc", "msg", "type", "ctx"}, f"unexpected keys: {entry!r}"
    return entry


# -- data

def new_user(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def qs(**params):
    """A query string ("?a=1&b=2"), form-encoded as Python's and most HTTP clients' do."""
    return "?" + urlencode(params) if params else ""


def chat_path(chat_id, suffix="", **params):
    return f"/chats/{quote(chat_id, safe='')}{suffix}{qs(**params)}"


def micros_to_timestamp(micros):
    seconds, rest = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:06d}Z"


def timestamp_to_micros(text):
    m = TIMESTAMP_RE.match(text)
    assert m, f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ"
    parts = [int(p) for p in m.groups()]
    return calendar.timegm(tuple(parts[:6]) + (0, 0, 0)) * 1_000_000 + parts[6]


def now_micros():
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


def check_chat(chat, user_id, title, message_count=0):
    """chat has exactly the Chat fields with these values, a v4 UUID and well-formed timestamps."""
    assert isinstance(chat, dict) and set(chat) == CHAT_KEYS, f"not a Chat: {chat!r}"
    assert isinstance(chat["id"], str) and UUID4_RE.match(chat["id"]), f"id is not a lower-case v4 UUID: {chat!r}"
    assert chat["user_id"] == user_id, f"user_id {chat['user_id']!r}, wanted {user_id!r}"
    assert chat["title"] == title, f"title {chat['title']!r}, wanted {title!r}"
    assert chat["message_count"] == message_count and type(chat["message_count"]) is int, \
        f"message_count {chat['message_count']!r}, wanted {message_count}"
    created = timestamp_to_micros(chat["created_at"])
    updated = timestamp_to_micros(chat["updated_at"])
    assert updated >= created, f"updated_at before created_at: {chat!r}"


def create_chat(stack, user_id, title=None, **fields):
    """POST /chats (title omitted when None); asserts 201 and a well-formed Chat."""
    body = {"user_id": user_id, **fields}
    if title is not None:
        body["title"] = title
    _, chat = expect(stack, "POST", "/chats", 201, json=body)
    check_chat(chat, user_id, title)
    return chat


def db_chat(stack, chat_id):
    """The chats row as a dict (text columns as the exact stored text), or None."""
    rows = stack.sql(
        "SELECT id, CAST(user_id AS BLOB), CAST(title AS BLOB), created_at, updated_at, message_count,"
        " typeof(user_id), typeof(title), CAST(system_prompt AS BLOB), model, pinned, archived"
        " FROM chats WHERE id = ?", (chat_id,))
    if not rows:
        return None
    row = rows[0]
    assert row[6] == "text" and row[7] in ("text", "null"), f"text stored as {row[6]}/{row[7]}"
    return {"id": row[0], "user_id": row[1].decode("utf-8"),
            "title": None if row[2] is None else row[2].decode("utf-8"),
            "created_at": row[3], "updated_at": row[4], "message_count": row[5],
            "system_prompt": None if row[8] is None else bytes(row[8]).decode("utf-8"), "model": row[9],
            "pinned": bool(row[10]), "archived": bool(row[11])}


def check_chat_stored(stack, chat):
    """The database holds exactly what the API returned for this chat."""
    row = db_chat(stack, chat["id"])
    assert row is not None, f"chat {chat['id']} is not in the database"
    want = dict(chat, created_at=timestamp_to_micros(chat["created_at"]),
                updated_at=timestamp_to_micros(chat["updated_at"]))
    assert row == want, f"stored row\n  {row!r}\ndiffers from the API's chat\n  {want!r}"
    return row


def count_chats(stack, user_id):
    return stack.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user_id,))[0][0]


def insert_messages(stack, chat_id, contents, start_micros=None):
    """Appends messages to the chat's active path (roles alternate user/assistant, one microsecond
    apart, each following the one before), as the repository would; returns their ids."""
    start = start_micros or now_micros()
    ids = []
    with contextlib.closing(stack.db()) as conn:
        conn.execute("BEGIN IMMEDIATE")
        (parent,) = conn.execute("SELECT max(id) FROM messages WHERE chat_id = ? AND active = 1",
                                 (chat_id,)).fetchone()
        for i, content in enumerate(contents):
            cur = conn.execute(
                "INSERT INTO messages (chat_id, parent_id, role, content, created_at) VALUES (?, ?, ?, ?, ?)",
                (chat_id, parent, ("user", "assistant")[i % 2], content, start + i))
            parent = cur.lastrowid
            ids.append(parent)
        conn.execute("UPDATE chats SET message_count = message_count + ? WHERE id = ?", (len(ids), chat_id))
        conn.execute("COMMIT")
    return ids


def db_messages(stack, chat_id):
    return stack.sql("SELECT id, role, CAST(content AS BLOB), created_at FROM messages"
                     " WHERE chat_id = ? ORDER BY id", (chat_id,))


def message_json(stack, message_id):
    """The Message the API should return for a stored message."""
    row, = stack.sql("SELECT id, chat_id, role, CAST(content AS BLOB), created_at, parent_id FROM messages"
                     " WHERE id = ?", (message_id,))
    siblings = [r[0] for r in stack.sql(
        "SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? AND state < 2 ORDER BY id", (row[1], row[5]))]
    return {"id": row[0], "chat_id": row[1], "role": row[2], "content": row[3].decode("utf-8"),
            "created_at": micros_to_timestamp(row[4]), "parent_id": row[5], "sibling_ids": siblings}
