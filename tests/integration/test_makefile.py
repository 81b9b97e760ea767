"""The Makefile's install: the shared environment is built once per machine for real - keyed by
the pins' hash, not by file times (a fresh clone's files are newer than any environment) - and
serialised, so two clones never install into one environment at once."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins_hash() -> str:
    pins = (REPO / "requirements.txt").read_bytes() + (REPO / "requirements-nodeps.txt").read_bytes()
    return hashlib.sha256(pins).hexdigest()[:12]


def dry_run(clone: Path, cache: Path) -> str:
    """What ``make install`` would do in ``clone`` with ``cache`` as the shared cache."""
    done = subprocess.run(["make", "-n", "install", f"ZOOFLOW_CACHE={cache}"], cwd=clone, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-nodeps.txt", "pyproject.toml"):
        shutil.copy(REPO / name, clone / name)  # new files: newer than the environment below
    return clone


def test_a_complete_environment_is_not_reinstalled_by_a_fresh_clone(tmp_path):
    cache = tmp_path / "cache"
    complete = cache / f"deps-{pins_hash()}" / ".complete"
    complete.parent.mkdir(parents=True)
    complete.touch()
    yesterday = time.time() - 86_400
    os.utime(complete, (yesterday, yesterday))
    plan = dry_run(fresh_clone(tmp_path), cache)
    assert "pip install --quiet -r requirements.txt" not in plan and "deps-locked" not in plan
    assert "Installing the pinned dependencies" not in plan
    assert "-e ." in plan  # only the clone's own thin .venv is made


def test_a_missing_environment_is_installed_under_a_lock(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()  # make -n still runs the recursive $(MAKE) line (dry, too), under flock
    plan = dry_run(fresh_clone(tmp_path), cache)
    assert f"flock \"{cache}/deps-{pins_hash()}.lock\"" in plan
    assert "Installing the pinned dependencies" in plan and "pip install --quiet -r requirements.txt" in plan
