"""The event loop never blocks on the web server: a parked chat's output waits in a queue bounded by
CLIENT_QUEUE_BYTES, and a client that stops reading past it is dropped, its reply stored incomplete,
while the other parked chats go on."""

import socket
import threading
import time

from api import create_chat, new_user
from harness import Stack, test
from provider import FakeProvider, INCOMPLETE, all_rows, model_env, rows, tag
from test_crash import check_no_partial_rows
from test_loop_parked import check_whole, stream_one

QUEUE = 65536
PIECE = 16384
PIECES = 600    # ~9.8 MB: more than every buffer between the worker and a client that reads nothing


def open_fds(pid):
    import os
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@test
def slow_reader_is_dropped_at_the_bound_and_its_reply_stored_incomplete():
    env = model_env(None, CLIENT_QUEUE_BYTES=str(QUEUE), PROVIDER_MAX_RESPONSE_BYTES=str(32 * 1048576),
                    PROVIDER_TIMEOUT_S="60", WORKER_PROCESSES="1", WORKER_THREADS="4")
    with FakeProvider() as p:
        env["GROQ_BASE_URL"] = p.base_url
        with Stack(env=env) as s:
            user = new_user("slow")
            chat_id = create_chat(s, user)["id"]
            t = tag()
            body = ('{"chat_id": "%s", "user_id": "%s", "message": "#words=%d #piece_bytes=%d %s", "stream": true}'
                    % (chat_id, user, PIECES, PIECE, t)).encode()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # and then it reads nothing
            sock.connect(("127.0.0.1", s.port))
            sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            # Meanwhile another parked chat, whose client reads, is answered whole.
            other_user = new_user("slow")
            other = create_chat(s, other_user)["id"]
            out = [None]
            th = threading.Thread(target=stream_one, args=(s, other, other_user, f"#words=6 #chunk_delay=0.5 {tag()}",
                                                           out, 0), daemon=True)
            th.start()
            deadline = time.monotonic() + 60
            while True:
                reply = [r for r in all_rows(s, chat_id) if r["role"] == "assistant"]
                if reply and reply[0]["state"] != 2:
                    break
                assert time.monotonic() < deadline, "the slow reader's send was not finished within 60 s"
                time.sleep(0.2)
            th.join(30)
            sock.close()
            shown = rows(s, chat_id)
            assert [r["role"] for r in shown] == ["user", "assistant"], shown
            stored = shown[1]
            full = " ".join(("w%d" % i).ljust(PIECE - 1, "x") for i in range(PIECES))
            assert stored["incomplete"] == 1, f"the dropped client's reply is not marked incomplete: {stored['incomplete']}"
            assert reply[0]["state"] == INCOMPLETE
            assert 0 < len(stored["content"]) < len(full) and full.startswith(stored["content"]), \
                f"stored {len(stored['content'])} bytes, not a prefix of the {len(full)}-byte reply"
            assert isinstance(out[0], tuple) and out[0][0] == 200, out[0]
            check_whole(s, other, out[0][1], " ".join(f"w{i}" for i in range(6)))
            log = (s.run_dir / "worker.log").read_text() if (s.run_dir / "worker.log").exists() else s.log_tail(200)
            assert "CLIENT_QUEUE_BYTES" in log, f"no word of the drop in the log:\n{log[-2000:]}"
            print(f"    dropped after {len(stored['content'])} of {len(full)} bytes", flush=True)
            check_no_partial_rows(s)
