"""The model half's limits, each gone past: the Idempotency-Key's length, the provider's answer size."""

from harness import Stack, test
from provider import check_failure, check_message_kept, model_env, new_chat, send, shared, shared_provider, tag


@test
def idempotency_key_over_255_characters_is_422():
    _, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    ok = send(s, chat_id, user, f"key of 255 {t}", headers={"Idempotency-Key": "k" * 255})
    assert ok[0] == 200, ok
    status, _, data = send(s, chat_id, user, f"key of 256 {t}", headers={"Idempotency-Key": "k" * 256})
    assert status == 422, data
    assert data == {"detail": [{"loc": ["header", "idempotency-key"],
                                "msg": "ensure this value has at most 255 characters",
                                "type": "value_error.any_str.max_length", "ctx": {"limit_value": 255}}]}, data
    assert [r[0] for r in s.sql("SELECT content FROM messages WHERE chat_id = ?", (chat_id,))
            if "key of 256" in r[0]] == [], "the refused message was stored"


@test
def provider_answer_over_the_limit_is_503():
    # 20,000 words make an answer of about 150 KB: past a 64 KiB PROVIDER_MAX_RESPONSE_BYTES.
    env = model_env(shared_provider(), PROVIDER_MAX_RESPONSE_BYTES="65536", PROVIDER_RETRIES="0")
    with Stack(env=env) as s:
        user, chat_id = new_chat(s)
        message = f"#words=20000 {tag()}"
        status, headers, data = send(s, chat_id, user, message)
        check_failure(status, headers, data, "larger than 65536 bytes")
        check_message_kept(s, chat_id, message)
        ok = send(s, chat_id, user, f"#words=100 {tag()}")
        assert ok[0] == 200, ok
