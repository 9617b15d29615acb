"""A minimal FastCGI client, to send the worker what nginx would never pass on (a request target over
nginx's 8 KiB, a raw %00 in the path, a Content-Length that is not a number, a body shorter than its
Content-Length, ...) straight to its unix socket.

    status, headers, body = fastcgi_request(socket_path(stack), "GET", "/health")

Only the responder role, one request per connection (as nginx does with fastcgi_keep_conn off).
"""

import re
import socket
import struct

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
MAX_CONTENT = 65535


class FastCGIError(Exception):
    pass


def socket_path(stack):
    """The worker's socket, from the nginx configuration conf/stack.sh wrote for the stack."""
    conf = (stack.run_dir / "nginx.conf").read_text()
    m = re.search(r"fastcgi_pass unix:([^;\s]+);", conf)
    if not m:
        raise FastCGIError(f"no fastcgi_pass unix:... in {stack.run_dir / 'nginx.conf'}")
    return m.group(1)


def _record(rtype, content, request_id=1):
    out = bytearray()
    for i in range(0, max(len(content), 1), MAX_CONTENT):
        part = content[i:i + MAX_CONTENT]
        padding = -len(part) % 8
        out += struct.pack(">BBHHBx", VERSION, rtype, request_id, len(part), padding) + part + b"\0" * padding
        if not content:
            break
    return bytes(out)


def _length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = bytearray()
    for name, value in params.items():
        name = name.encode("latin-1") if isinstance(name, str) else name
        value = value.encode("utf-8") if isinstance(value, str) else value
        out += _length(len(name)) + _length(len(value)) + name + value
    return bytes(out)


def _recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise FastCGIError(f"the worker closed the connection ({len(data)} of {n} bytes of a record)")
        data += chunk
    return bytes(data)


def parse_cgi_response(stdout):
    """(status, headers with lower-case names, body) from a CGI-style response (Status: header)."""
    head, sep, body = stdout.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = stdout.partition(b"\n\n")
    if not sep:
        raise FastCGIError(f"no end of headers in the worker's output: {stdout[:300]!r}")
    headers = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = int(headers.get("status", "200").split()[0])
    return status, headers, body


def fastcgi_request(path_to_socket, method, target, body=b"", params=None, content_length=True,
                    close_stdin=True, timeout=30):
    """Sends one request and reads the answer. target is the raw REQUEST_URI (bytes or str: sent as
    is, whatever it holds); params are extra or overriding FastCGI parameters (a value of None leaves
    one out). content_length: True sends len(body), a value sends that, None leaves it out.
    close_stdin=False never ends the input stream: the request's body stays unfinished and the
    connection is then closed from this side (returns None). Returns (status, headers, body)."""
    target = target.encode("latin-1") if isinstance(target, str) else target
    path, _, query = target.partition(b"?")
    env = {
        "REQUEST_METHOD": method, "REQUEST_URI": target, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "fastcgi_client.py", "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
    }
    if body:
        env["CONTENT_TYPE"] = "application/json"
    if content_length is True:
        env["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        env["CONTENT_LENGTH"] = str(content_length)
    for name, value in (params or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path_to_socket)
        out = _record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0))
        out += _record(PARAMS, encode_params(env)) + _record(PARAMS, b"")
        if body:
            out += _record(STDIN, body)
        if close_stdin:
            out += _record(STDIN, b"")
        sock.sendall(out)
        if not close_stdin:
            return None
        return read_answer(sock)


def read_answer(sock):
    """(status, headers, body) of one answer read from sock, up to its END_REQUEST record."""
    stdout = bytearray()
    while True:
        _, rtype, _, length, padding = struct.unpack(">BBHHBx", _recv_exact(sock, 8))
        content = _recv_exact(sock, length + padding)[:length]
        if rtype == STDOUT:
            stdout += content
        elif rtype == END_REQUEST:
            return parse_cgi_response(bytes(stdout))
