"""Where zooflow keeps things, and the environment that keeps every tool offline and patient."""

from __future__ import annotations

import os
from pathlib import Path

# Each of these stops a tool from phoning home or from giving up too early on a 2-core machine
# (see shared/STACK.md for the failure each one prevents).
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per download floods CLI output
    "HF_HUB_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "zooflow",
}


def apply_offline_defaults() -> None:
    """Set the offline environment variables unless the user has set them already."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def project_root() -> Path:
    """The zooflow project folder: ``$ZOOFLOW_HOME``, else the nearest folder up from the
    working directory that holds ``data.dvc`` or ``.dvc/``, else the working directory."""
    home = os.environ.get("ZOOFLOW_HOME")
    if home:
        return Path(home).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "data.dvc").exists() or (folder / ".dvc").is_dir():
            return folder
    return here


def data_root() -> Path:
    """The DVC-tracked data folder (``<root>/data``)."""
    return project_root() / "data"


def checkpoint_root() -> Path:
    """Where interrupted trainings leave their per-epoch checkpoints (git-ignored)."""
    return project_root() / ".zooflow" / "checkpoints"


# mlflow.set_tracking_uri() also writes MLFLOW_TRACKING_URI into the environment (for child
# processes). The embedded URIs we computed must not then pass for a user's choice, or a
# process that switches projects would keep writing to the first project's store.
_EMBEDDED_URIS: set[str] = set()


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` (a team server), else the embedded SQLite store in ``mlflow/``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri not in _EMBEDDED_URIS:
        return uri
    folder = project_root() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    embedded = f"sqlite:///{folder / 'mlflow.db'}"
    _EMBEDDED_URIS.add(embedded)
    return embedded


def artifact_root() -> str:
    """Artifact location for experiments created against the embedded store."""
    return (project_root() / "mlflow" / "artifacts").as_uri()


def offline() -> bool:
    """True when nothing may be downloaded (``ZOOFLOW_OFFLINE=1``): pretrained weights must
    then already be on disk."""
    return os.environ.get("ZOOFLOW_OFFLINE", "0").lower() in {"1", "true", "yes"}
