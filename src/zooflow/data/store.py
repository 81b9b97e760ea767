"""DVC access: ``data/`` is tracked by the top-level ``data.dvc``; this is its version control.

A task's data version is the md5 that ``data.dvc`` records for the whole folder plus the hash
of the task's own sub-folder, taken from DVC's directory listing (the ``.dir`` object in the
cache), so retraining one task is not "new data" just because another task's data changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from zooflow.errors import UserError

DATA_DIR = "data"
POINTER = "data.dvc"
DEFAULT_REMOTE = "local"
# A folder inside the checkout (git-ignored), so a fresh clone pushes and pulls offline.
# A team replaces it: `dvc remote add -d team s3://...` (or any shared folder).
DEFAULT_REMOTE_FOLDER = ".dvc-storage"


class DataError(UserError, RuntimeError):
    """The data is missing or does not match its recorded version."""


@dataclass(frozen=True)
class DataVersion:
    """What identifies the data one run used."""

    data_md5: str          # data.dvc's md5 of the whole data/ folder
    task_folder: str       # e.g. "classification"
    task_md5: str          # hash of that sub-folder's entries in DVC's listing
    files: int

    @property
    def tag(self) -> str:
        """The short form logged on runs and model versions."""
        return f"{self.data_md5.removesuffix('.dir')[:12]}:{self.task_md5[:12]}"

    def as_dict(self) -> dict:
        return {**asdict(self), "tag": self.tag}


def _repo(root: Path):
    from dvc.repo import Repo  # DVC imports slowly; only pay for it when data is touched

    # Targets are passed as absolute paths: DVC resolves relative ones from the working
    # directory, not from the repo.
    return Repo(str(Path(root).resolve()))


def init(root: Path, remote_url: str | None = None) -> None:
    """``dvc init`` (inside git when there is one) with a default local-folder remote."""
    from dvc.repo import Repo

    root = Path(root)
    if not (root / ".dvc").is_dir():
        Repo.init(str(root), no_scm=not (root / ".git").exists())
    # DVC stores a relative path relative to .dvc/config, so the checkout can move.
    url = remote_url or str((root / DEFAULT_REMOTE_FOLDER).resolve())
    with _repo(root) as repo:
        with repo.config.edit() as conf:
            conf["core"]["remote"] = DEFAULT_REMOTE
            conf["remote"][DEFAULT_REMOTE] = {"url": url}


def data_lock(root: Path):
    """Held while data/ and data.dvc change (imports, commits, demo builds): two changes at
    once would each record a version holding half of the other."""
    from zooflow import locks

    return locks.held(Path(root) / ".zooflow" / "locks" / "data.lock", timeout=3600)


def commit(root: Path) -> str:
    """``dvc add data`` + ``dvc push``: record the current data/ as a new version; its md5."""
    root = Path(root)
    if not (root / DATA_DIR).is_dir():
        raise DataError(f"{root / DATA_DIR} does not exist: build the demo data or import a dataset first")
    with _repo(root) as repo:
        repo.add(str(root / DATA_DIR))
        repo.push(targets=[str(root / POINTER)])
    return pointer_md5(root)


def pull(root: Path) -> None:
    """``dvc pull`` of data.dvc from the default remote."""
    with _repo(root) as repo:
        repo.pull(targets=[str(Path(root) / POINTER)])


def pointer_md5(root: Path) -> str:
    """The md5 that data.dvc records for data/ (ends in ``.dir``)."""
    path = Path(root) / POINTER
    if not path.exists():
        raise DataError(f"{path} is missing: data/ is not under DVC yet (run `zooflow data demo` or `zooflow data import`)")
    return yaml.safe_load(path.read_text())["outs"][0]["md5"]


def listing(root: Path) -> list[dict]:
    """DVC's directory listing of data/ (``[{"md5", "relpath"}, ...]``) from the local cache."""
    md5 = pointer_md5(root)
    cache = Path(root) / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not cache.exists():
        raise DataError(f"DVC's listing for {md5} is not in {cache.parent}: run `dvc pull`")
    return json.loads(cache.read_text())


def is_clean(root: Path) -> bool:
    """True when data/ on disk matches data.dvc (DVC's own status check)."""
    with _repo(root) as repo:
        return not repo.status(targets=[str(Path(root) / POINTER)])


def version(root: Path, task_folder: str) -> DataVersion:
    """The data version of one task's sub-folder of data/."""
    prefix = task_folder.rstrip("/") + "/"
    entries = sorted((e["relpath"][len(prefix):], e["md5"]) for e in listing(root) if e["relpath"].startswith(prefix))
    if not entries:
        raise DataError(f"data.dvc holds no files under data/{prefix}: build or import this task's data")
    task_md5 = hashlib.md5(json.dumps(entries).encode()).hexdigest()
    return DataVersion(pointer_md5(root), task_folder, task_md5, len(entries))


def ensure(root: Path, task_folder: str) -> DataVersion:
    """Make sure the task's data is on disk and matches data.dvc; return its version.

    Pulls from the remote when the folder is missing. Refuses to go on when data/ was edited
    without recording a new version, so no model is ever tied to a version it did not see.
    """
    root = Path(root)
    folder = root / DATA_DIR / task_folder
    if not folder.is_dir():
        try:
            pull(root)
        except Exception as error:
            raise DataError(f"{folder} is missing and `dvc pull` failed ({error}); "
                            "run `zooflow data demo` or `zooflow data import`") from error
    if not folder.is_dir():
        raise DataError(f"{folder} is missing after `dvc pull`: data.dvc has no such folder")
    if not is_clean(root):
        raise DataError(f"{root / DATA_DIR} differs from {POINTER}: record it as a new version with "
                        "`zooflow data commit` (dvc add + push) before training on it")
    return version(root, task_folder)
