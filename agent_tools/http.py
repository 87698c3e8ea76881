"""Streamable HTTP at /mcp, served by the same WSGI processes as the rest of Tollgate.

`billing_project.wsgi` sends /mcp here; everything else goes to Django as
before, so `bin/run`'s gunicorn and docker-compose's serve /mcp on the same
port with nothing else to run.

Per request, in the gunicorn thread that received it:

1. The API key is checked as the REST API checks it (`Authorization: Bearer`,
   `accounts.services.api_key_authenticate`) and counted against the same rate
   limit; a refusal is the REST envelope with 401 or 429.
2. The request goes to the SDK's `StreamableHTTPSessionManager` (stateless,
   JSON responses: any worker process can answer any request), which runs on
   an event loop in one background thread per process.
3. When a tool needs Django, its work is handed back to this same request
   thread, which runs it with its own database connection, exactly as a REST
   view would, and hands the result back to the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest

from accounts.services import ApiKeyCheck, api_key_authenticate
from agent_tools.server import build_server
from agent_tools.throttle import throttle_hit
from billing_project import request_context
from billing_project.api import PayloadTooLarge
from billing_project.errors import AuthenticationFailed, InvalidRequest, TollgateError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from usage.errors import TokenNotAllowed
from usage.models import TOKEN_PREFIX
from usage.services import spending_token_authenticate

PATH = "/mcp"
# Longer than any tool takes; a request still unanswered then is a bug, not a wait.
EXCHANGE_TIMEOUT = 120.0
logger = logging.getLogger(__name__)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
T = TypeVar("T")

_WORK, _DONE = "work", "done"


class MethodNotAllowed(TollgateError):
    status = 405
    code = "method_not_allowed"
    default_message = "POST JSON-RPC messages to /mcp; this server opens no stream on GET."


class _RequestCaller:
    """The `Caller` of one HTTP request: Django work runs back in the request's thread."""

    source = "mcp"

    def __init__(self, check: ApiKeyCheck, loop: asyncio.AbstractEventLoop, inbox: queue.SimpleQueue) -> None:
        self._check = check
        self._loop = loop
        self._inbox = inbox

    async def run(self, fn: Callable[[], T]) -> T:
        future = self._loop.create_future()
        self._inbox.put((_WORK, fn, future))
        return await future

    def check(self) -> ApiKeyCheck:
        return self._check

    def throttle(self, check: ApiKeyCheck) -> None:
        pass  # counted once per HTTP request, before the SDK sees it


class _Loop:
    """The per-process event loop the SDK's session manager runs on."""

    def __init__(self) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=build_server(), json_response=True, stateless=True,
            # Hosts are Django's ALLOWED_HOSTS, checked before this (wsgi.py); a
            # browser page cannot send the bearer key, so rebinding gains nothing.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 4 * 1024 * 1024,
        )
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._main, name="mcp-loop", daemon=True).start()
        self._ready.wait(timeout=10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await asyncio.Event().wait()  # until the process ends


_loop: _Loop | None = None
_loop_lock = threading.Lock()


def _shared_loop() -> _Loop:
    global _loop
    if _loop is None:
        with _loop_lock:
            if _loop is None:
                _loop = _Loop()
    return _loop


def _json(status: int, body: bytes, start_response, extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    start_response(f"{status} {_PHRASES.get(status, 'Status')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(extra or [])])
    return [body]


def _refuse(error: TollgateError, start_response, extra: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    return _json(error.status, json.dumps({"error": error.as_dict()}).encode(), start_response, extra)


def _authenticate(environ: dict) -> ApiKeyCheck:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise AuthenticationFailed()
    keyword, _, secret = header.partition(" ")
    if keyword.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
    secret = secret.strip()
    if secret.startswith(TOKEN_PREFIX):
        # A spending token records usage through the REST API and nothing else.
        check = spending_token_authenticate(raw_token=secret)  # a dead one is told so: 401 or 403
        raise TokenNotAllowed(check.token.prefix, f"Spending token {check.token.prefix} can only record usage events "
                                                  "through POST /api/v1/usage/events; MCP needs an API key.")
    return api_key_authenticate(raw_key=secret)


def _scope(environ: dict, body: bytes, caller: _RequestCaller) -> dict[str, Any]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
    if environ.get("CONTENT_TYPE"):
        headers.append((b"content-type", environ["CONTENT_TYPE"].encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": environ["REQUEST_METHOD"], "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": PATH, "raw_path": PATH.encode(), "root_path": "",
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 80)),
        "client": (environ.get("REMOTE_ADDR", ""), 0),
        "state": {"tollgate": caller},
    }


def _content_length(environ: dict) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _read_body(environ: dict) -> bytes:
    length = _content_length(environ)
    if length > 0:
        return environ["wsgi.input"].read(length)
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        # gunicorn decodes a chunked body; the SDK refuses one over its limit with 413.
        return environ["wsgi.input"].read((settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 4 * 1024 * 1024) + 1)
    return b""


def serve(environ: dict, start_response) -> Iterable[bytes]:
    """The WSGI app of /mcp."""
    signals.request_started.send(sender=__name__, environ=environ)
    request = HttpRequest()
    request.META = environ
    try:
        host = request.get_host()  # checked against ALLOWED_HOSTS, as Django checks every request
    except DisallowedHost:
        signals.request_finished.send(sender=__name__)
        return _refuse(InvalidRequest("The request was refused."), start_response)
    supplied = environ.get("HTTP_X_REQUEST_ID", "")
    ctx = request_context.RequestContext(
        request_id=supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex,
        ip=environ.get("REMOTE_ADDR") or None, source="mcp",
        site_url=f"{environ.get('wsgi.url_scheme', 'http')}://{host}",
    )
    token = request_context.set_current(ctx)
    try:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _content_length(environ) > limit:
            return _refuse(PayloadTooLarge(), start_response)
        try:
            check = _authenticate(environ)
        except AuthenticationFailed as error:
            return _refuse(error, start_response, [("WWW-Authenticate", 'Bearer realm="tollgate"')])
        except TollgateError as error:  # a spending token, which MCP does not take
            return _refuse(error, start_response)
        try:
            throttle_hit(check)
        except TollgateError as error:
            return _refuse(error, start_response, [("Retry-After", str(error.details.get("retry_after", 1)))])
        if environ["REQUEST_METHOD"] == "GET":
            # No server-initiated messages here (stateless): the spec's answer to
            # the standalone SSE stream is 405, and a held-open stream would tie
            # up a gunicorn thread for nothing.
            return _refuse(MethodNotAllowed(), start_response, [("Allow", "POST")])
        status, headers, body = _exchange(environ, _read_body(environ), check)
        start_response(status, headers + [("X-Request-Id", ctx.request_id)])
        return [body]
    finally:
        request_context.reset(token)
        signals.request_finished.send(sender=__name__)


def _exchange(environ: dict, body: bytes, check: ApiKeyCheck) -> tuple[str, list[tuple[str, str]], bytes]:
    """Hand the request to the SDK on the loop, run the Django work it sends back, return its answer."""
    shared = _shared_loop()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    caller = _RequestCaller(check, shared.loop, inbox)
    scope = _scope(environ, body, caller)
    answer: dict[str, Any] = {"status": 500, "headers": [], "body": []}

    async def asgi() -> None:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects mid-answer here
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))

        try:
            await shared.manager.handle_request(scope, receive, send)
        finally:
            inbox.put((_DONE, None, None))

    done = asyncio.run_coroutine_threadsafe(asgi(), shared.loop)
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    while True:
        try:
            kind, fn, future = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            done.cancel()
            logger.error("MCP request took over %s s; answered 504", EXCHANGE_TIMEOUT)
            return "504 Gateway Timeout", [("Content-Type", "application/json")], json.dumps({"error": {
                "type": "server_error", "code": "timeout", "message": "The MCP server did not answer in time."}}).encode()
        if kind == _DONE:
            try:
                error = done.exception(timeout=5)  # the coroutine is past its last await
            except Exception:  # noqa: BLE001  cancelled or still running: nothing more to learn
                error = None
            if error is not None:
                logger.error("MCP request failed", exc_info=error)
            break
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001  handed to the awaiting coroutine
            shared.loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            shared.loop.call_soon_threadsafe(_settle, future, result, None)
    status = answer["status"]
    return f"{status} {_PHRASES.get(status, 'Status')}", answer["headers"], b"".join(answer["body"])


_PHRASES = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def wsgi_router(django_app: Callable) -> Callable:
    """The project's WSGI app: /mcp to the MCP server, everything else to Django."""

    def application(environ: dict, start_response):
        path = environ.get("PATH_INFO", "")
        if path == PATH or path == PATH + "/":
            return serve(environ, start_response)
        return django_app(environ, start_response)

    return application
