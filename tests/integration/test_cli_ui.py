"""``zooflow ui``: on a tracking server it says where the server's own UI is (running ``mlflow ui``
on an http URI fails); on the local store, a port already taken is an error with a non-zero exit
(``mlflow ui`` itself logs it and exits 0)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def zooflow(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zooflow", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, **env})


def test_against_a_tracking_server_it_names_the_servers_ui():
    done = zooflow("ui", MLFLOW_TRACKING_URI="http://127.0.0.1:5999")
    assert done.returncode == 0, done.stderr
    assert "tracks to a server: open http://127.0.0.1:5999" in done.stdout


def test_a_taken_port_is_an_error_not_a_silent_success(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = zooflow("ui", "--port", str(port))
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in done.stdout and "Traceback" not in done.stdout + done.stderr
