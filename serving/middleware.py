"""ASGI middleware of the offer service: request ids, optional bearer auth, /readyz, safe 5xx.

* Every HTTP response carries ``X-Request-ID``; the API handlers use the same id (a
  context variable set here), so the id in an /offers body, its exposures and its
  header agree.
* 5xx bodies (ours or BentoML's) get the request id added and never a stack trace; 4xx
  JSON bodies (BentoML's validation errors, ours) keep what they say and get the request id
  added too, so a client can quote it for any failed call.
* ``TAILOR_API_TOKEN`` set: /offers, /scores and /events need ``Authorization: Bearer
  <token>`` (401 otherwise); health, readiness, docs and metrics stay open.
* ``GET /readyz`` answers from the service's own readiness (models and store loaded),
  with a JSON body saying what is missing, instead of BentoML's bare check.
* ``GET /docs.json`` serves BentoML's OpenAPI spec completed with the error answers the
  service really gives (:mod:`serving.openapi`).
* A request body over ``MAX_BODY_BYTES`` (a full request with a 500-item basket is about
  6 KB) is refused with 413 before it is read into memory: by its Content-Length, or, sent
  in chunks without one, as soon as the chunks pass the limit.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import os

from serving.openapi import complete_spec

logger = logging.getLogger(__name__)

TOKEN_ENV = "TAILOR_API_TOKEN"
PROTECTED = frozenset({"/offers", "/scores", "/events"})
MAX_BODY_BYTES = 256 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a chunked body passes the limit (answered with 413)."""


REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tailor_request_id", default=None
)


def new_request_id() -> str:
    """32 random hex digits (as unguessable as a uuid4, without building a UUID object)."""
    return os.urandom(16).hex()


def current_request_id() -> str:
    """The id of the request being handled (a new one outside a request)."""
    return REQUEST_ID.get() or new_request_id()


async def _send_json(
    send, status: int, body: dict, request_id: str, extra_headers: list | None = None
) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"x-request-id", request_id.encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class TailorMiddleware:
    """See the module docstring. ``readiness`` returns ``(ready, body)`` for /readyz."""

    def __init__(
        self,
        app,
        readiness=None,
        token: str | None = None,
        max_body: int = MAX_BODY_BYTES,
        openapi=None,
    ):
        self.app = app
        self.max_body = max_body
        self.openapi = openapi  # () -> the framework's spec (a dict), completed once at first use
        self._spec: dict | None = None
        self.readiness = readiness
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        if token is None and os.environ.get(TOKEN_ENV) == "":
            logger.warning("%s is set but empty: the API answers without a token", TOKEN_ENV)
        self._token_header = f"Bearer {self.token}".encode() if self.token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = new_request_id()
        token = REQUEST_ID.set(rid)
        try:
            path = scope["path"]
            if self._token_header is not None and path in PROTECTED and not self._authorised(scope):
                return await _send_json(
                    send,
                    401,
                    {"error": "missing or invalid bearer token", "request_id": rid},
                    rid,
                    [(b"www-authenticate", b'Bearer realm="tailor"')],
                )
            if (
                path == "/readyz"
                and scope["method"] in ("GET", "HEAD")
                and self.readiness is not None
            ):
                ready, body = self.readiness()
                return await _send_json(send, 200 if ready else 503, body, rid)
            if path == "/docs.json" and scope["method"] == "GET" and self.openapi is not None:
                if self._spec is None:
                    self._spec = complete_spec(self.openapi(), self.max_body)
                return await _send_json(send, 200, self._spec, rid)
            length = _content_length(scope) if scope["method"] in BODY_METHODS else None
            if length is not None and length > self.max_body:
                return await _send_json(send, 413, self._too_large(length, rid), rid)
            state: dict = {}
            if scope["method"] in BODY_METHODS and length is None:
                receive = self._capped(receive, state, rid)
            try:
                await self.app(scope, receive, self._wrap_send(send, rid, state))
            except BodyTooLarge:
                if state.get("started"):
                    raise
                await _send_json(send, 413, state["too_large"], rid)
        finally:
            REQUEST_ID.reset(token)

    def _too_large(self, length: int, rid: str, sent: bool = False) -> dict:
        size = f"at least {length}" if sent else str(length)
        return {
            "error": f"request body of {size} bytes is over the limit of {self.max_body} bytes",
            "request_id": rid,
        }

    def _capped(self, receive, state: dict, rid: str):
        """``receive`` that raises :class:`BodyTooLarge` once the body passes the limit.

        The framework may catch the exception and answer 400 or 500 itself: ``state``
        keeps the 413 body, and the response is replaced by it (see :meth:`_wrap_send`).
        """
        seen = 0

        async def capped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    state["too_large"] = self._too_large(seen, rid, sent=True)
                    raise BodyTooLarge(seen)
            return message

        return capped

    def _authorised(self, scope) -> bool:
        for k, v in scope["headers"]:
            if k == b"authorization":
                scheme, _, token = v.strip().partition(b" ")
                # the scheme is case-insensitive (RFC 7235); the token is compared in constant time
                given = b"Bearer " + token.strip() if scheme.lower() == b"bearer" else v
                return hmac.compare_digest(given, self._token_header)
        return False

    @staticmethod
    def _wrap_send(send, rid: str, state: dict | None = None):
        rid_b = rid.encode()
        state = state if state is not None else {}
        state.update(error=False, start=None, chunks=[], started=False)  # keeps "too_large"

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid_b))
                message = {**message, "headers": headers}
                if message["status"] >= 400:
                    state["error"], state["start"] = True, message
                    return
                state["started"] = True  # sent: too late for a 413
                return await send(message)
            if message["type"] == "http.response.body" and state["error"]:
                state["chunks"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                if "too_large" in state:  # whatever the framework made of the cut-off body
                    return await _send_json(send, 413, state["too_large"], rid)
                return await _send_error(send, state["start"], b"".join(state["chunks"]), rid)
            return await send(message)

        return wrapped


def _content_length(scope) -> int | None:
    for k, v in scope["headers"]:
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None  # the HTTP server refuses a malformed length itself
    return None


async def _send_error(send, start: dict, body: bytes, rid: str) -> None:
    """Re-send an error with the request id in its JSON body.

    A 5xx keeps its body only if it is a JSON object (never a traceback); a 4xx that is not
    a JSON object (a plain 404, say) is passed on unchanged, with the id in its header.
    """
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        if start["status"] < 500:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        parsed = {"error": "internal error; quote the request id when reporting it"}
    parsed["request_id"] = rid
    data = json.dumps(parsed).encode()
    headers = [
        (k, v)
        for k, v in start["headers"]
        if k.lower() not in (b"content-length", b"content-type", b"transfer-encoding")
    ]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": data})
