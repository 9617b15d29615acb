"""Checks an HTTP response against the OpenAPI document (conf/docs/openapi.json).

    problems = check_response("GET", "/chats?user_id=u1", 200, headers, body)   # [] when it conforms

The operation is found by matching the path against the document's path templates ({name} matches one
non-empty segment; literal segments win over templates), HEAD falling back to GET. Then the response
object for the status (exact, then "4XX"-style, then "default"; "undocumented status" otherwise), then the
media type of the response's Content-Type: JSON bodies are validated with jsonschema's Draft 2020-12
validator ($ref into the whole document), server-sent events are parsed and each event checked against
the documented event shapes when the document gives them. Documented required response headers must be
present (and match their schema). A 204 has no body.

Not API operations, skipped: /docs, /redoc, /docs/assets/..., nginx's /.errors/... A path the document
does not know (answered 404, or 400, 413, 414, 431, 500, 501, 503 by nginx before routing) and a known path
answered 405 for a method it does not document are checked against components.responses NotFound,
MethodNotAllowed, BadRequest, ... (GENERIC_RESPONSES) when the document defines them, else skipped; so is
a CORS preflight (OPTIONS) unless the document describes OPTIONS for that path.

Needs python3-jsonschema (Debian 12: 4.10, which has Draft202012Validator and RefResolver).
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

try:
    import jsonschema
except ImportError:  # Debian: apt-get install python3-jsonschema (make deps does)
    jsonschema = None

DOC_PATH = Path(os.path.abspath(__file__)).parent.parent.parent / "conf" / "docs" / "openapi.json"

SKIPPED_PREFIXES = ("/docs/", "/.errors/")
SKIPPED_PATHS = ("/docs", "/redoc")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SSE_FIELDS = ("event", "data", "id", "retry")
# components.responses checked for a path the document does not describe (when it defines them).
GENERIC_RESPONSES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "ContentTooLarge",
                     414: "UriTooLong", 431: "HeadersTooLarge", 500: "InternalError", 501: "NotImplemented",
                     503: "ServiceUnavailable"}


class Document:
    """A loaded OpenAPI document and the checks made against it."""

    def __init__(self, doc):
        self.doc = doc
        self.paths = doc.get("paths") or {}
        self.resolver = jsonschema.RefResolver.from_schema(doc)
        self.templates = []  # (segments, path item, template)
        for template, item in self.paths.items():
            segs = template.strip("/").split("/") if template.strip("/") else []
            self.templates.append((segs, self._deref(item), template))
        self._validators = {}

    @classmethod
    def load(cls, path=DOC_PATH):
        with open(path, "rb") as f:
            return cls(json.loads(f.read().decode("utf-8")))

    # -- references

    def _deref(self, obj):
        """Follows a local {"$ref": "#/..."} (repeatedly) to the object it names."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 20:
            ref = obj["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"unsupported $ref {ref!r} (only local references)")
            target = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target[part]
            obj = target
            seen += 1
        return obj

    def _validator(self, schema):
        key = id(schema)
        if key not in self._validators:
            jsonschema.Draft202012Validator.check_schema(schema)
            self._validators[key] = (schema, jsonschema.Draft202012Validator(
                schema, resolver=self.resolver, format_checker=_format_checker()))
        return self._validators[key][1]

    def schema_errors(self, schema, value, where):
        """Problems of value against schema, one line each (all of them, most specific first)."""
        try:
            validator = self._validator(schema)
        except jsonschema.SchemaError as e:
            return [f"{where}: the document's schema is invalid: {e.message}"]
        problems = []
        for err in sorted(validator.iter_errors(value), key=lambda e: (list(e.absolute_path), e.message)):
            at = "".join(f"[{p!r}]" for p in err.absolute_path) or "(top)"
            schema_at = "/".join(str(p) for p in err.absolute_schema_path)
            why = _short(err.message)
            if err.context:  # oneOf/anyOf: say why the closest alternative failed
                best = jsonschema.exceptions.best_match(err.context)
                why += f"; closest: {_short(best.message)}"
            problems.append(f"{where} {at}: {why} (schema: {schema_at})")
        return problems

    # -- finding the operation

    def match_path(self, path):
        """(template, path item) of the document's path that path (without query) matches, or None."""
        raw = path.strip("/")
        segs = [unquote(s) for s in raw.split("/")] if raw else []
        if path.endswith("/") and raw:
            segs.append("")  # "/chats/" is not "/chats"
        best = None
        for tsegs, item, template in self.templates:
            if len(tsegs) != len(segs):
                continue
            params = 0
            for t, s in zip(tsegs, segs):
                if t.startswith("{") and t.endswith("}"):
                    if s == "":
                        break
                    params += 1
                elif t != s:
                    break
            else:
                if best is None or params < best[0]:
                    best = (params, template, item)
        return None if best is None else (best[1], best[2])

    def generic_response(self, name):
        responses = (self.doc.get("components") or {}).get("responses") or {}
        return self._deref(responses[name]) if name in responses else None

    # -- the check

    def check(self, method, target, status, headers, body):
        method = method.upper()
        path = target.split("?", 1)[0].split("#", 1)[0]
        if path.startswith(("http://", "https://")):  # an absolute request target
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        if path in SKIPPED_PATHS or path.startswith(SKIPPED_PREFIXES):
            return []
        headers = {k.lower(): v for k, v in headers.items()}
        where = f"{method} {path} -> {status}"
        found = self.match_path(path)
        if found is None:  # not an API path: the generic answer for the status, if the document has one
            name = GENERIC_RESPONSES.get(status)
            return self._check_generic(name, method, status, headers, body, where) if name else []
        template, item = found
        operation = item.get(method.lower())
        if operation is None and method == "HEAD":
            operation = item.get("get")
        if operation is None:
            if method == "OPTIONS":
                return []  # a CORS preflight the document does not describe
            if status in GENERIC_RESPONSES:  # 405, or refused before routing (400, 413, ...)
                return self._check_generic(GENERIC_RESPONSES[status], method, status, headers, body, where)
            return [f"{where}: the document has no {method} operation for {template} (answered {status})"]
        where = f"{method} {path} ({method} {template}) -> {status}"
        operation = self._deref(operation)
        responses = operation.get("responses") or {}
        response = self._response_for(responses, status)
        if response is None:
            return [f"{where}: undocumented status {status} (documented: {', '.join(sorted(responses))})"]
        return self._check_response(response, method, status, headers, body, where)

    def _check_generic(self, name, method, status, headers, body, where):
        response = self.generic_response(name)
        if response is None:
            return []
        return self._check_response(response, method, status, headers, body,
                                    f"{where} (components.responses.{name})")

    @staticmethod
    def _response_for(responses, status):
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                return responses[key]
        return None

    def _check_response(self, response, method, status, headers, body, where):
        response = self._deref(response)
        problems = self._check_headers(response, headers, where)
        if status == 204 or status == 304:
            if body:
                problems.append(f"{where}: a {status} has a body ({len(body)} bytes)")
            return problems
        if method == "HEAD":
            return problems  # no body to check
        content = response.get("content") or {}
        if not content:
            if body:
                problems.append(f"{where}: a body ({len(body)} bytes) where the document describes none")
            return problems
        ctype = headers.get("content-type", "")
        media = ctype.split(";")[0].strip().lower()
        if not body and media != "text/event-stream":
            problems.append(f"{where}: an empty body; the document describes {', '.join(content)}")
            return problems
        key = _media_key(content, media)
        if key is None:
            problems.append(f"{where}: Content-Type {ctype!r} is not among the documented {', '.join(content)}")
            return problems
        media_obj = self._deref(content[key]) or {}
        if media == "application/json" or media.endswith("+json"):
            problems += self._check_json(media_obj, body, where)
        elif media == "text/event-stream":
            problems += self._check_sse(media_obj, body, where)
        return problems

    def _check_headers(self, response, headers, where):
        problems = []
        for name, spec in (response.get("headers") or {}).items():
            spec = self._deref(spec) or {}
            lname = name.lower()
            if lname == "content-type":
                continue  # OpenAPI: ignored (the content map says it)
            if lname not in headers:
                if spec.get("required"):
                    problems.append(f"{where}: the required header {name} is missing")
                continue
            schema = spec.get("schema")
            if schema is not None:
                problems += self.schema_errors(schema, self._header_value(schema, headers[lname]),
                                               f"{where}: header {name}: {headers[lname]!r}")
        return problems

    def _header_value(self, schema, value):
        """A header's text as the value its schema describes (a number or boolean when it says so)."""
        kind = self._deref(schema).get("type") if isinstance(self._deref(schema), dict) else None
        kinds = kind if isinstance(kind, list) else [kind]
        if "string" in kinds or kind is None:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def _check_json(self, media_obj, body, where):
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return [f"{where}: the body is not JSON ({e})"]
        schema = media_obj.get("schema")
        if schema is None:
            return []
        return self.schema_errors(schema, value, f"{where}: body")

    def _check_sse(self, media_obj, body, where):
        try:
            events = parse_sse(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return [f"{where}: the body is not a server-sent-events stream: {e}"]
        schema = media_obj.get("itemSchema")  # OpenAPI 3.2's per-event schema
        by_name = media_obj.get("x-events") or media_obj.get("x-sse-events")
        if schema is None and by_name is None:
            schema = media_obj.get("schema")
            if schema is not None and not _describes_events(self, schema):
                schema = None
        problems = []
        for i, (name, data) in enumerate(events):
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = data
            at = f"{where}: event {i} ({name})"
            if by_name is not None:
                spec = self._deref(by_name.get(name)) if name in by_name else None
                if spec is None:
                    problems.append(f"{at}: an event the document does not list ({', '.join(by_name)})")
                    continue
                spec_schema = spec.get("schema", spec) if isinstance(spec, dict) else spec
                problems += self.schema_errors(spec_schema, decoded, f"{at}: data")
            elif schema is not None:
                problems += self.schema_errors(schema, {"event": name, "data": decoded}, at)
        return problems


def _format_checker():
    cls = jsonschema.Draft202012Validator
    return getattr(cls, "FORMAT_CHECKER", None) or jsonschema.draft202012_format_checker


def _describes_events(doc, schema):
    """Whether a text/event-stream schema describes events ({event, data} objects), rather than the text."""
    schema = doc._deref(schema)
    if not isinstance(schema, dict):
        return False
    props = schema.get("properties") or {}
    if "event" in props or "data" in props:
        return True
    return any(_describes_events(doc, s) for k in ("oneOf", "anyOf", "allOf") for s in schema.get(k, []))


def _media_key(content, media):
    for key in content:
        if key.split(";")[0].strip().lower() == media:
            return key
    major = media.split("/")[0] + "/*"
    for key in (major, "*/*"):
        if key in content:
            return key
    return None


def parse_sse(text):
    """[(event name, data)] of a text/event-stream body (comments skipped); ValueError if it is not one."""
    events, name, data = [], None, []
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if line == "":
            if data:
                events.append((name or "message", "\n".join(data)))
            name, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field not in SSE_FIELDS:
                raise ValueError(f"line {line[:80]!r} is not a server-sent-events field")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if name is not None or data:
        raise ValueError("the stream ends inside an event (no blank line after it)")
    return events


def _short(text, limit=300):
    return text if len(text) <= limit else text[:limit] + "..."


_document = None


def document():
    """The document, loaded once per process."""
    global _document
    if jsonschema is None:
        raise RuntimeError("python3-jsonschema is not installed (apt-get install python3-jsonschema; or"
                           " E2E_NO_SCHEMA=1 to skip checking responses against the OpenAPI document)")
    if _document is None:
        try:
            _document = Document.load()
        except (OSError, ValueError) as e:
            raise RuntimeError(f"{DOC_PATH}: cannot load the OpenAPI document: {e}") from None
    return _document


def active():
    """Whether responses are validated: the document describes paths, and E2E_NO_SCHEMA is not set."""
    return not os.environ.get("E2E_NO_SCHEMA") and bool(document().paths)


def check_response(method, target, status, headers, body):
    """Problems of one response (a list of strings, empty when it conforms). target is the request's raw
    path with its query; headers a dict (any case); body bytes."""
    return document().check(method, target, status, headers, body)
