"""``zooflow`` as a separate process, the way a user's shell (or a scheduler) runs it: for the
tests that interrupt, kill or race real runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def zooflow_env(root: Path, prefect_api: str | None) -> dict[str, str]:
    """The environment of a run in project ``root``: its own store and configs; Prefect's
    shared test server when given (else the run starts its own temporary one)."""
    env = {**os.environ, "ZOOFLOW_HOME": str(root), "ZOOFLOW_CONFIG_DIR": str(root / "configs"),
           "ZOOFLOW_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env


def start(root: Path, *args: str, prefect_api: str | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``zooflow ARGS``; its output (stdout + stderr) goes to ``log``."""
    log = log or root / f"zooflow-{time.monotonic_ns()}.log"
    return subprocess.Popen([sys.executable, "-m", "zooflow", *args], cwd=root, env=zooflow_env(root, prefect_api),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``text`` shows in the process's log (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if process.poll() is not None:
            raise AssertionError(f"zooflow exited {process.returncode} before printing {text!r}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text()}")
        time.sleep(0.1)


def set_profile(root: Path, task: str, model: str, profile: str, **values) -> None:
    """Change one profile block of the project's task config (e.g. more epochs to interrupt)."""
    path = root / "configs" / f"{task}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["models"][model]["profiles"][profile].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


def prefect_api_url() -> str:
    """The API URL of the Prefect server the session's test harness started."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
