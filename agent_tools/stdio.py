"""MCP over stdio, for local MCP clients: `python manage.py mcp --stdio` with the
API key in TOLLGATE_API_KEY. The key is checked at start (a bad one exits with
a message) and again at every call, as the REST API checks it per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.to_thread
from django.db import close_old_connections

from accounts.services import ApiKeyCheck, api_key_authenticate
from agent_tools.server import build_server
from agent_tools.throttle import throttle_hit
from mcp.server.stdio import stdio_server

T = TypeVar("T")


class StdioCaller:
    source = "mcp:stdio"

    def __init__(self, raw_key: str) -> None:
        self.raw_key = raw_key
        # One thread at a time talks to the database: one connection, as one client.
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, fn: Callable[[], T]) -> T:
        def in_thread() -> T:
            close_old_connections()
            try:
                return fn()
            finally:
                close_old_connections()

        return await anyio.to_thread.run_sync(in_thread, limiter=self._limiter)

    def check(self) -> ApiKeyCheck:
        return api_key_authenticate(raw_key=self.raw_key)

    def throttle(self, check: ApiKeyCheck) -> None:
        throttle_hit(check)


def serve_stdio(caller: StdioCaller) -> None:
    @asynccontextmanager
    async def lifespan(_server) -> AsyncIterator[dict]:
        yield {"tollgate": caller}

    server = build_server(lifespan=lifespan)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)
