import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")

_django = get_wsgi_application()

# After Django is set up: /mcp is the MCP server (agent_tools.http), the rest is Django.
from agent_tools.http import wsgi_router  # noqa: E402

application = wsgi_router(_django)
