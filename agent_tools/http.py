"""Streamable HTTP at /mcp, served by the same WSGI processes as the rest of Tollgate.

`billing_project.wsgi` sends /mcp here; everything else goes to Django as
before, so `bin/run`'s gunicorn and docker-compose's serve /mcp on the same
port with nothing else to run.

Per request, all in the gunicorn thread that received it:

1. The API key is checked as the REST API checks it (`Authorization: Bearer`,
   `accounts.services.api_key_authenticate`) and counted against the same rate
   limit; a refusal is the REST envelope with 401 or 429.
2. The request goes to the SDK's `StreamableHTTPSessionManager` (stateless,
   JSON responses: any worker process can answer any request), made for this
   request and run on this thread's own event loop.
3. When a tool needs Django, the loop stops between two steps and the thread
   runs the work with no loop running (Django refuses database work inside
   one), exactly as a REST view would, then resumes the loop with the result.
   Nothing crosses threads, so a call pays no thread hand-offs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
import weakref
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
_SERVER = build_server()


class MethodNotAllowed(TollgateError):
    status = 405
    code = "method_not_allowed"
    default_message = "POST JSON-RPC messages to /mcp; this server opens no stream on GET."


class _RequestCaller:
    """The `Caller` of one HTTP request: the SDK's coroutine asks for Django work,
    the request's thread runs it between two steps of its loop (`_exchange`)."""

    source = "mcp"

    def __init__(self, check: ApiKeyCheck, loop: asyncio.AbstractEventLoop) -> None:
        self._check = check
        self._loop = loop
        self.wake: asyncio.Future | None = None
        self.pending: tuple[Callable[[], Any], asyncio.Future] | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        future = self._loop.create_future()
        self.pending = (fn, future)
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)
        return await future

    def check(self) -> ApiKeyCheck:
        return self._check

    def throttle(self, check: ApiKeyCheck) -> None:
        pass  # counted once per HTTP request, before the SDK sees it


_loops = threading.local()


class _LoopHolder:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Closed with the thread (a thread-per-request server's threads end): its selector and pipe go too.
        weakref.finalize(self, self.loop.close)


def _thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, made on its first MCP request and kept (running only inside `_exchange`)."""
    holder = getattr(_loops, "holder", None)
    if holder is None:
        holder = _loops.holder = _LoopHolder()
    return holder.loop


def _manager() -> StreamableHTTPSessionManager:
    # A manager runs once; stateless, it holds nothing between requests, so each request has its own.
    return StreamableHTTPSessionManager(
        app=_SERVER, json_response=True, stateless=True,
        # Hosts are Django's ALLOWED_HOSTS, checked before this (wsgi.py); a
        # browser page cannot send the bearer key, so rebinding gains nothing.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 4 * 1024 * 1024,
    )


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
    """Run the request through the SDK on this thread's loop, stopping it to do the Django work it asks for."""
    loop = _thread_loop()
    caller = _RequestCaller(check, loop)
    scope = _scope(environ, body, caller)
    answer: dict[str, Any] = {"status": 500, "headers": [], "body": []}
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

    async def asgi() -> None:
        manager = _manager()
        try:
            # The loop's clock runs on while it is stopped for Django work, which counts too.
            async with asyncio.timeout(EXCHANGE_TIMEOUT), manager.run():
                await manager.handle_request(scope, receive, send)
        except TimeoutError:
            logger.error("MCP request took over %s s; answered 504", EXCHANGE_TIMEOUT)
            answer.update(status=504, headers=[("Content-Type", "application/json")], body=[json.dumps({"error": {
                "type": "server_error", "code": "timeout", "message": "The MCP server did not answer in time."}}).encode()])

    task = loop.create_task(asgi())
    while True:
        caller.wake = wake = loop.create_future()
        task.add_done_callback(lambda _, wake=wake: wake.done() or wake.set_result(None))
        loop.run_until_complete(wake)
        if caller.pending is None:
            break
        fn, future = caller.pending
        caller.pending = None
        try:
            future.set_result(fn())  # the loop is stopped: Django may use the database here
        except BaseException as exc:  # noqa: BLE001  handed to the awaiting coroutine
            future.set_exception(exc)
    if not task.cancelled() and task.exception() is not None:
        logger.error("MCP request failed", exc_info=task.exception())
        answer.update(status=500, headers=[("Content-Type", "application/json")], body=[json.dumps({"error": {
            "type": "server_error", "code": "server_error",
            "message": "Something went wrong on our side; it has been logged."}}).encode()])
    status = answer["status"]
    return f"{status} {_PHRASES.get(status, 'Status')}", answer["headers"], b"".join(answer["body"])


_PHRASES = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout"}


def wsgi_router(django_app: Callable) -> Callable:
    """The project's WSGI app: /mcp to the MCP server, everything else to Django."""

    def application(environ: dict, start_response):
        path = environ.get("PATH_INFO", "")
        if path == PATH or path == PATH + "/":
            return serve(environ, start_response)
        return django_app(environ, start_response)

    return application
