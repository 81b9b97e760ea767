"""Starting a local server for a test and waiting until it answers (127.0.0.1 only)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], ready_url: str, env: dict | None = None, timeout: float = 120) -> subprocess.Popen:
    """Start ``command`` (with this venv's bin first on PATH, as the tools expect) and wait until
    ``ready_url`` answers; fails the test if the process dies or the time runs out."""
    environment = {**os.environ, **(env or {}), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(ready_url, timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"{command[:4]} exited with {server.returncode}") from None
            if time.time() > deadline:
                server.terminate()
                raise AssertionError(f"{command[:4]} did not answer {ready_url} in {timeout} s") from None
            time.sleep(1)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)
