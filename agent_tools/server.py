"""The MCP server: Tollgate's billing tools and resources on the official SDK's
low-level `Server`, for both transports (agent_tools.http, agent_tools.stdio).

A transport hands each request a `Caller`: how to run Django code for it (in
the HTTP request's own thread, or a worker thread for stdio) and who is
calling (the API key checked by `accounts.services.api_key_authenticate`).
Every tool call then runs `call_tool_sync` in that thread: scope check, the
tool (agent_tools.tools), and every refusal turned into a tool error whose
content carries the REST API's error envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError

from accounts.models import Scope
from accounts.services import ApiKeyCheck
from agent_tools import resources
from agent_tools.tools import TOOLS
from billing_project import request_context
from billing_project.api import error_for
from billing_project.errors import PermissionDenied

logger = logging.getLogger(__name__)

SERVER_NAME = "tollgate"
INSTRUCTIONS = (
    "Tollgate bills this platform's usage in credits. Ask billing_balance before costly work, billing_estimate "
    "for what a workflow would cost, billing_reserve before a run and billing_capture (or billing_release) after "
    "it, or billing_record_usage for one event. A refusal for lack of credits is a tool error with code "
    "insufficient_credits and a top_up_url to show a person."
)

T = TypeVar("T")


class Caller(Protocol):
    """What a transport gives each request."""

    source: str  # "mcp" or "mcp:stdio", stamped on audit rows

    def run(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Run `fn` where it may use the database, and await its result."""

    def check(self) -> ApiKeyCheck:
        """The caller's key (raises AuthenticationFailed). Called inside `run`."""

    def throttle(self, check: ApiKeyCheck) -> None:
        """Count one call against the key's rate limit (raises a TollgateError when over it)."""


def _caller(ctx: ServerRequestContext) -> Caller:
    request = ctx.request
    state = getattr(request, "scope", {}).get("state") if request is not None else None
    if state and "tollgate" in state:
        return state["tollgate"]
    return ctx.lifespan_context["tollgate"]


# --- tools -----------------------------------------------------------------------------


def tool_list() -> list[types.Tool]:
    return [
        types.Tool(
            name=spec.name, title=spec.title,
            description=f"{spec.description} Scope: {spec.scope}.",
            input_schema=spec.input_schema, output_schema=spec.output_schema,
            annotations=types.ToolAnnotations(
                title=spec.title, read_only_hint=not spec.writes, destructive_hint=False,
                idempotent_hint=not spec.writes or spec.name in ("billing_release",), open_world_hint=False,
            ),
        )
        for spec in TOOLS.values()
    ]


def error_result(error: dict[str, Any], status: int) -> types.CallToolResult:
    """A refusal as a tool error: the envelope (with the HTTP status the REST API
    would have answered) as structured content and as text, after a readable line."""
    envelope = {"error": {**error, "status": status}}
    extra = f" Top up: {error['top_up_url']}" if error.get("top_up_url") else ""
    text = f"{error['message']}{extra} ({error['code']})\n{json.dumps(envelope)}"
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=envelope, is_error=True)


def _refusal(exc: Exception) -> types.CallToolResult:
    found = error_for(exc)
    if found is None:
        logger.exception("MCP tool call failed")
        return error_result({"type": "server_error", "code": "server_error",
                             "message": "Something went wrong on our side; it has been logged."}, 500)
    return error_result(*found)


def call_tool_sync(caller: Caller, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """One tool call, in a thread that may use the database."""
    spec = TOOLS.get(name)
    if spec is None:
        return error_result({"type": "invalid_request", "code": "unknown_tool",
                             "message": f"No tool named {name!r}. Tools: {', '.join(TOOLS)}."}, 404)
    ctx = request_context.RequestContext(
        request_id=request_context.current().request_id, ip=request_context.current().ip,
        source=caller.source, site_url=request_context.current().site_url,
    )
    token = request_context.set_current(ctx)
    try:
        check = caller.check()
        caller.throttle(check)
        if not check.key.has_scope(spec.scope):
            raise PermissionDenied(f"This API key lacks the `{spec.scope}` scope.")
        result = spec.fn(check, arguments)
    except Exception as exc:  # noqa: BLE001  every refusal becomes a tool error; a bug is logged
        return _refusal(exc)
    finally:
        request_context.reset(token)
    return types.CallToolResult(content=[types.TextContent(text=result.text)], structured_content=result.data)


async def _list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOL_LIST)


async def _call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
    caller = _caller(ctx)
    arguments = dict(params.arguments or {})
    return await caller.run(lambda: call_tool_sync(caller, params.name, arguments))


# --- resources -------------------------------------------------------------------------


def read_resource_sync(caller: Caller, uri: str) -> str:
    check = caller.check()
    caller.throttle(check)
    if not check.key.has_scope(Scope.READ):
        raise PermissionDenied(f"This API key lacks the `{Scope.READ}` scope.")
    return resources.read(uri)


async def _list_resources(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[
        types.Resource(uri=r.uri, name=r.name, title=r.title, description=r.description, mime_type="application/json")
        for r in resources.RESOURCES.values()
    ])


async def _read_resource(ctx: ServerRequestContext, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    caller = _caller(ctx)
    uri = str(params.uri)
    if uri not in resources.RESOURCES:
        raise MCPError(types.INVALID_PARAMS, f"No resource {uri}. Resources: {', '.join(resources.RESOURCES)}.")

    def read() -> str | dict:
        try:
            return read_resource_sync(caller, uri)
        except Exception as exc:  # noqa: BLE001  refusals become protocol errors carrying the envelope
            found = error_for(exc)
            if found is None:
                logger.exception("MCP resource read failed")
                return {"type": "server_error", "code": "server_error", "message": "Something went wrong on our side."}
            return {**found[0], "status": found[1]}

    text = await caller.run(read)
    if isinstance(text, dict):
        raise MCPError(types.INVALID_REQUEST, text["message"], data={"error": text})
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)])


TOOL_LIST = tool_list()


def tool_input_schema(name: str) -> dict[str, Any] | None:
    """A tool's input schema by name, for the SDK's `Mcp-Param-*` header check on
    each tools/call. Every key is shown the same tools, so this is the list's
    own; without it the SDK runs the whole tools/list for every call."""
    spec = TOOLS.get(name)
    return spec.input_schema if spec is not None else None


def build_server(lifespan=None) -> Server:
    kwargs = {"lifespan": lifespan} if lifespan is not None else {}
    return Server(
        SERVER_NAME, version="1", title="Tollgate billing", instructions=INSTRUCTIONS,
        get_tool_input_schema=tool_input_schema, on_list_tools=_list_tools, on_call_tool=_call_tool,
        on_list_resources=_list_resources, on_read_resource=_read_resource,
        **kwargs,
    )
