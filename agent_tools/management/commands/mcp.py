"""`manage.py mcp --stdio`: Tollgate's MCP server over stdin/stdout (docs/mcp.md).

The HTTP transport needs no command: it is /mcp on the running service."""

import os

from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_key_authenticate
from agent_tools.stdio import StdioCaller, serve_stdio
from billing_project import request_context
from billing_project.errors import AuthenticationFailed
from usage.models import TOKEN_PREFIX


class Command(BaseCommand):
    help = "Serve Tollgate's billing tools over MCP on stdio; the API key comes from TOLLGATE_API_KEY."

    def add_arguments(self, parser):
        parser.add_argument("--stdio", action="store_true", help="Serve on stdin/stdout (the only transport here; "
                                                                  "HTTP is /mcp on the running service).")

    def handle(self, *args, stdio: bool, **options):
        if not stdio:
            raise CommandError("Pass --stdio. The HTTP transport is /mcp on the running service (bin/run).")
        raw_key = os.environ.get("TOLLGATE_API_KEY", "").strip()
        if not raw_key:
            raise CommandError("Set TOLLGATE_API_KEY to an API key (manage.py create_api_key --org SLUG).")
        if raw_key.startswith(TOKEN_PREFIX):
            raise CommandError("TOLLGATE_API_KEY is a spending token, which can only record usage through the REST "
                               "API; MCP needs an API key.")
        try:
            check = api_key_authenticate(raw_key=raw_key)
        except AuthenticationFailed as error:
            raise CommandError(f"TOLLGATE_API_KEY: {error.message}") from None
        self.stderr.write(f"Tollgate MCP server on stdio for {check.org.slug} (key {check.key.prefix}, "
                          f"scopes {' '.join(check.scopes)}).")
        with request_context.acting_as("mcp:stdio"):
            serve_stdio(StdioCaller(raw_key))
