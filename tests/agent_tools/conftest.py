"""MCP tests: the SDK's own client against both transports, on the real test database.

HTTP: billing_project.wsgi's application (the one gunicorn serves) on a free
loopback port in a thread. stdio: `manage.py mcp --stdio` as a subprocess on
the test database. Both see only committed rows, so the tests use
`transactional_db`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connection

from tests.billing.conftest import catalog  # noqa: F401  the plans and packs
from tests.factories import OrganizationFactory, api_key_for
from tests.usage.conftest import rate_card  # noqa: F401  the default rate card
from usage import services
from usage.models import GrantSource

ROOT = Path(__file__).resolve().parents[2]
C = 1_000_000


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def mcp_server():
    """The project's WSGI app (Django, with /mcp routed to the MCP server) on a free port."""
    from billing_project.wsgi import application

    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=True)
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def funded(transactional_db, catalog, rate_card):  # noqa: F811
    """Acme with 1,500 credits bought."""
    org = OrganizationFactory(name="Acme", slug="acme")
    services.credits_grant(org=org, amount_micros=1500 * C, source=GrantSource.PURCHASE, idempotency_key="mcp:fund")
    return org


@pytest.fixture
def full_key(funded) -> str:
    return api_key_for(funded, scopes=("read", "usage:write"))[1]


@pytest.fixture
def read_key(funded) -> str:
    return api_key_for(funded, scopes=("read",), name="reader")[1]


def run(coro):
    """Run a client session to its end in this thread (no ORM inside: the server does that)."""
    return asyncio.run(coro)


def stdio_params(raw_key: str | None):
    from mcp import StdioServerParameters

    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_API_KEY"}
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # The test database, whatever its name; DATABASE_URL still says where the server is.
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
    })
    if raw_key is not None:
        env["TOLLGATE_API_KEY"] = raw_key
    return StdioServerParameters(command=sys.executable, args=[str(ROOT / "manage.py"), "mcp", "--stdio"],
                                 env=env, cwd=str(ROOT))
