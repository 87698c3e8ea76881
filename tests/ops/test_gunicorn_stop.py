"""Ctrl-C stops the web server's workers: they leave SIGINT to their master.

A terminal's Ctrl-C signals the whole process group. A gthread worker that
took SIGINT and then its master's SIGQUIT ran its quit handler twice, the
second inside the first, and hung on the first's lock, still holding the
port after `bin/run` had exited (billing_project.gunicorn_conf.post_worker_init).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ignores_sigint(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def test_ctrl_c_stops_the_workers_through_their_master_and_frees_the_port(tmp_path):
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    master = subprocess.Popen(
        [str(gunicorn), "-c", "python:billing_project.gunicorn_conf", "billing_project.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "w"),
    )
    try:
        deadline = time.monotonic() + 30
        while not (workers := children(master.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers, (tmp_path / "gunicorn.log").read_text()
        (worker,) = workers
        deadline = time.monotonic() + 30  # booting Django on a loaded machine takes a while
        while not ignores_sigint(worker) and alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ignores_sigint(worker), "a worker must leave SIGINT to its master"

        os.kill(worker, signal.SIGINT)  # what Ctrl-C gives every process of the group
        time.sleep(0.5)
        assert alive(worker)

        os.killpg(master.pid, signal.SIGINT)
        master.wait(timeout=30)
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), (tmp_path / "gunicorn.log").read_text()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
