"""Shared fixtures: a throwaway zooflow project (git + DVC + demo data + its own MLflow store)
and one Prefect test server for the whole session (it takes ~20 s to start on 2 cores)."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import zooflow  # noqa: F401  (sets the offline environment before Prefect/MLflow import)
from zooflow.config import config_path
from zooflow.data import store
from zooflow.data.demo import BUILDERS, build_classification

os.environ["ZOOFLOW_OFFLINE"] = "1"  # tests never download anything
os.environ.pop("MLFLOW_TRACKING_URI", None)  # each test project has its own embedded store

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers (pytest-xdist), one per core: a torch thread each, or four
    # threads fight over two cores and every training test runs slower (the suite took 20 min
    # with two threads a worker, 18 with one).
    torch.set_num_threads(1)


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, as POSIX paths relative to it."""
    return {path.relative_to(folder).as_posix() for path in Path(folder).rglob("*") if path.is_file()}


def make_project(folder: Path, policy: dict | None = None, datasets: tuple[str, ...] = ("classification",)) -> Path:
    """A fresh project: git, DVC with a local remote, the given demo datasets committed as a
    data version, and the real task configs (optionally with the policy changed)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    store.init(folder)
    for name in datasets:
        BUILDERS[name](folder / "data" / name)
    store.commit(folder)
    configs = folder / "configs"
    configs.mkdir()
    for source in config_path("classification").parent.glob("*.yaml"):
        raw = yaml.safe_load(source.read_text())
        raw["policy"].update(policy or {})
        (configs / source.name).write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return folder


def mlflow_client():
    """An MLflow client on the current project's tracking store (the one ``using_project`` or the
    environment points at)."""
    import mlflow

    from zooflow import settings

    mlflow.set_tracking_uri(settings.tracking_uri())
    return mlflow.MlflowClient()


@contextmanager
def using_project(root: Path):
    """``root`` as the zooflow home and config folder (for module-scoped fixtures, which cannot
    use monkeypatch); the environment is restored afterwards."""
    saved = {key: os.environ.get(key) for key in ("ZOOFLOW_HOME", "ZOOFLOW_CONFIG_DIR")}
    os.environ.update(ZOOFLOW_HOME=str(root), ZOOFLOW_CONFIG_DIR=str(root / "configs"))
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A fresh project as the current zooflow home (default policy)."""
    root = make_project(tmp_path / "project")
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    return root


@pytest.fixture
def lenient_project(tmp_path, monkeypatch) -> Path:
    """A project whose policy threshold is 0, so a smoke model can become champion."""
    root = make_project(tmp_path / "project", policy={"threshold": 0.0, "margin": 0.01})
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    return root


@pytest.fixture(scope="session")
def prefect_server():
    """One real (temporary) Prefect API for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """A small valid ImageFolder copy of the demo data (not under DVC) for pure data tests."""
    folder = tmp_path / "images"
    build_classification(folder)
    return folder


def copy_image(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.gpu` tests need CUDA; on a CPU-only machine they are reported as skipped
    (they run in benchmarks/gpu_check.sh on a GPU machine)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
