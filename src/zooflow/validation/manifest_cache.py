"""Manifests kept per task data version, so validating unchanged data does not decode and hash
every file again.

A manifest is a function of the task's files (its data version's ``task_md5``), the task code
that reads them and the config's ``data`` checks. The cache key holds all of these plus
``MANIFEST_FORMAT``: bump it when a manifest's columns or their computation change, and every
cached manifest is rebuilt. Files live in ``.zooflow/cache/manifests/`` (git-ignored) as parquet,
which keeps column dtypes (bool stays bool, int64 stays int64) so the expectations see exactly
the table the task built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from zooflow import settings

log = logging.getLogger("zooflow")

MANIFEST_FORMAT = 1  # bump when any task's manifest changes shape or meaning


def cache_folder() -> Path:
    """Where cached manifests live: ``<project>/.zooflow/cache/manifests``."""
    return settings.project_root() / ".zooflow" / "cache" / "manifests"


def cache_key(module: str, task_folder: str, task_md5: str, data_checks: dict) -> str:
    """A file name for one manifest: the task data md5 (readable, to spot a version's file)
    and a digest of everything else the manifest depends on."""
    parts = {"format": MANIFEST_FORMAT, "module": module, "folder": task_folder, "task_md5": task_md5,
             "data": data_checks}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{task_md5[:12]}-{digest[:24]}"


def read(path: Path) -> pd.DataFrame | None:
    """The cached manifest at ``path``, or None when there is none or it cannot be read
    (truncated, corrupt, another format): the caller rebuilds it, a bad file never stops a run."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as error:  # any unreadable file means the same thing: rebuild
        log.warning("ignoring unreadable cached manifest %s (%s: %s); rebuilding it",
                    path, type(error).__name__, error)
        return None


def write(table: pd.DataFrame, path: Path) -> None:
    """Store ``table`` at ``path`` atomically (a temporary file in the same folder, then
    ``os.replace``), so a reader never sees half a file, even with two runs writing at once.
    A table parquet cannot hold is left uncached (logged), never an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        table.to_parquet(temporary)
        os.replace(temporary, path)
    except Exception as error:
        log.warning("could not cache the manifest in %s (%s: %s)", path, type(error).__name__, error)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def cached_manifest(build: Callable[[], pd.DataFrame], *, module: str, task_folder: str, task_md5: str,
                    data_checks: dict, folder: Path | None = None) -> pd.DataFrame:
    """The manifest for this task data version: from the cache when present and readable,
    else ``build()`` (the task's ``manifest``), stored for next time."""
    path = (folder or cache_folder()) / f"{cache_key(module, task_folder, task_md5, data_checks)}.parquet"
    table = read(path)
    if table is not None:
        log.info("manifest of data version %s from the cache (%d rows)", task_md5[:12], len(table))
        return table
    table = build()
    write(table, path)
    return table
