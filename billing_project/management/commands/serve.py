"""Run the whole service on one machine: migrate, seed the demo, then web
(gunicorn, which also serves the MCP endpoint /mcp: billing_project.wsgi), a
Celery worker and Celery beat as child processes.

It is what `bin/run` calls. Ctrl-C (or SIGTERM) stops all three; if one of
them dies the others are stopped too, so a broken start never looks healthy.
Then the embedded PostgreSQL stops too, when this start is what started it.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from billing_project import embedded


class Command(BaseCommand):
    help = "Migrate, seed the demo org and run web + worker + beat until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="Skip seeding the demo login.")
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))

    def handle(self, *args, host, port, no_demo, web_workers, **options):
        # Settings started the embedded server (or found it running) before this runs.
        try:
            self.serve(host=host, port=port, no_demo=no_demo, web_workers=web_workers)
        finally:
            self.stop_embedded_postgres()

    def stop_embedded_postgres(self) -> None:
        if embedded.started_here(settings.VAR_DIR):
            embedded.stop_postgres(settings.VAR_DIR)
            self.stdout.write("Stopped the embedded PostgreSQL.")
        elif not os.environ.get("DATABASE_URL") and embedded.is_running(settings.VAR_DIR):
            self.stdout.write(
                "The embedded PostgreSQL was running before this start and is left running "
                "(python manage.py embedded_postgres stop stops it)."
            )

    def serve(self, *, host, port, no_demo, web_workers):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        if not no_demo:
            call_command("seed_demo")
        # WhiteNoise serves from the finders here (no collectstatic); an
        # existing, empty STATIC_ROOT keeps it from warning at every start.
        os.makedirs(settings.STATIC_ROOT, exist_ok=True)
        python = sys.executable
        bin_dir = os.path.dirname(python)
        commands = {
            "web": [
                os.path.join(bin_dir, "gunicorn"), "-c", "python:billing_project.gunicorn_conf", "billing_project.wsgi",
                "--bind", f"{host}:{port}", "--workers", str(web_workers), "--threads", "4",
                "--access-logfile", "-",
            ],
            "worker": [python, "-m", "celery", "-A", "billing_project", "worker", "--loglevel", "INFO",
                       "--concurrency", "2", "--without-mingle", "--without-gossip"],
            "beat": [python, "-m", "celery", "-A", "billing_project", "beat", "--loglevel", "INFO",
                     "--pidfile", str(settings.VAR_DIR / "celerybeat.pid")],
        }
        env = child_env(host=host, port=port)
        procs = {name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR) for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(
            f"Tollgate is starting on {served_url(host=host, port=port)}  "
            f"(web pid {procs['web'].pid}, worker pid {procs['worker'].pid}, beat pid {procs['beat'].pid}). "
            f"MCP for agents: {served_url(host=host, port=port)}/mcp (docs/mcp.md). "
            "Ctrl-C stops everything."
        ))

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the rest.")
                    exit_code = proc.returncode or 1
                    stopping = True
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if exit_code:
            sys.exit(exit_code)


def served_url(*, host: str, port: int) -> str:
    """The address a browser on this machine opens: localhost for a loopback or any-address bind."""
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost") else host
    return f"http://{shown}:{port}"


def child_env(*, host: str, port: int) -> dict[str, str]:
    """The environment of web, worker and beat. Without SITE_URL they would link
    to port 8000 (a worker's e-mails have no request to learn the port from), so
    they get the address actually served."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not env.get("SITE_URL"):
        env["SITE_URL"] = served_url(host=host, port=port)
    return env
