"""The production environment shown in docs/operations.md passes
`manage.py check --deploy` without a single warning."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def documented_environment() -> dict[str, str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## HTTPS and `check --deploy`", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    env = {}
    for line in block.strip().splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


def test_the_documented_production_environment_passes_check_deploy():
    env = documented_environment()
    assert "<" in env["SECRET_KEY"]  # a placeholder, never a key to copy
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    # The check reads no database; this one only keeps the settings from starting the embedded server.
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or "postgres://tollgate:secret@127.0.0.1:5432/tollgate"
    env.update(PATH=os.environ["PATH"], HOME=os.environ.get("HOME", "/tmp"), DJANGO_SETTINGS_MODULE="billing_project.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stderr


def test_the_https_settings_are_off_without_the_environment():
    assert settings.SECURE_HSTS_SECONDS == 0
    assert settings.SECURE_SSL_REDIRECT is False


def test_plain_http_is_redirected_except_the_health_check(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/billing/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/billing/"
    assert client.get("/healthz").status_code != 301
