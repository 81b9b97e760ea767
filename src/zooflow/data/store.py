"""DVC access: ``data/`` is tracked by the top-level ``data.dvc``; this is its version control.

A task's data version is the md5 that ``data.dvc`` records for the whole folder plus the hash
of the task's own sub-folder, taken from DVC's directory listing (the ``.dir`` object in the
cache), so retraining one task is not "new data" just because another task's data changed.

A run touches only its task's sub-folder: ``ensure`` pulls ``data/<folder>`` alone (DVC's granular
pull) and checks that folder alone against data.dvc, so an uncommitted edit of another task's
data neither blocks nor invalidates it, and a clone that trains one task downloads one folder.
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
    absent = absent_folders(root)
    if absent:
        # `dvc add data` records what is on disk: folders a per-task pull left out would vanish.
        raise DataError(f"{', '.join(f'{DATA_DIR}/{name}' for name in absent)} recorded in {root / POINTER} but "
                        "not on disk (a task's run pulls only its own folder): fetch all of data/ with "
                        "`dvc pull data.dvc` first, or the new version would drop them")
    with _repo(root) as repo:
        repo.add(str(root / DATA_DIR))
        repo.push(targets=[str(root / POINTER)])
    return pointer_md5(root)


def _target(root: Path, task_folder: str | None) -> str:
    """DVC target for all of data.dvc, or for one task's sub-folder of data/ (absolute)."""
    root = Path(root).resolve()
    return str(root / DATA_DIR / task_folder if task_folder else root / POINTER)


def pull(root: Path, task_folder: str | None = None) -> None:
    """``dvc pull`` from the default remote: all of data.dvc, or only ``data/<task_folder>``
    (a granular pull downloads and checks out that folder's files and leaves the rest alone)."""
    with _repo(root) as repo:
        repo.pull(targets=[_target(root, task_folder)])


def fetch(root: Path, task_folder: str | None = None) -> None:
    """``dvc fetch``: the objects of data.dvc (or of one sub-folder) into the local cache,
    without touching the files in data/."""
    with _repo(root) as repo:
        repo.fetch(targets=[_target(root, task_folder)])


def pointer_md5(root: Path) -> str:
    """The md5 that data.dvc records for data/ (ends in ``.dir``)."""
    path = Path(root) / POINTER
    if not path.exists():
        raise DataError(f"{path} is missing: data/ is not under DVC yet (run `zooflow data demo` or `zooflow data import`)")
    return yaml.safe_load(path.read_text())["outs"][0]["md5"]


def _listing_file(root: Path, md5: str | None = None) -> Path:
    """Where DVC's cache keeps the ``.dir`` object (the listing) of data.dvc's md5 (or of ``md5``)."""
    md5 = md5 or pointer_md5(root)
    return Path(root) / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def listing(root: Path) -> list[dict]:
    """DVC's directory listing of data/ (``[{"md5", "relpath"}, ...]``) from the local cache."""
    cache = _listing_file(root)
    if not cache.exists():
        raise DataError(f"DVC's listing for {pointer_md5(root)} is not in {cache.parent}: run `dvc pull`")
    return json.loads(cache.read_text())


def listing_at(root: Path, data_md5: str) -> list[dict] | None:
    """DVC's listing of data/ as it was at ``data_md5`` (any past version, not only data.dvc's),
    from the local cache or else the default remote when that is a folder on this machine; None
    when neither holds it. A remote elsewhere (S3, SSH) is not asked: reading a listing must not
    turn into a download."""
    cached = _listing_file(root, data_md5)
    if cached.is_file():
        return json.loads(cached.read_text())
    try:
        with _repo(root) as repo:
            remote = repo.cloud.get_remote()
            if remote.fs.protocol != "local" or not remote.odb.exists(data_md5):
                return None
            return json.loads(remote.odb.fs.cat_file(remote.odb.oid_to_path(data_md5)))
    except Exception:  # noqa: BLE001 - no remote configured or unreadable: the listing is not here
        return None


def files_in(entries: list[dict], task_folder: str) -> dict[str, str]:
    """The entries of a listing under ``data/<task_folder>``: path inside the folder -> md5."""
    prefix = task_folder.rstrip("/") + "/"
    return {e["relpath"][len(prefix):]: e["md5"] for e in entries if e["relpath"].startswith(prefix)}


def recorded(root: Path, task_folder: str) -> dict[str, str]:
    """What data.dvc records under ``data/<task_folder>``: path inside the folder -> md5."""
    return files_in(listing(root), task_folder)


def on_disk(root: Path, task_folder: str) -> dict[str, str]:
    """The files under ``data/<task_folder>`` now: path inside the folder -> md5.

    Hashed the way ``dvc add`` hashes them (same ``.dvcignore`` rules, plain md5) and through
    DVC's state database, which remembers each file's hash by inode, mtime and size, so files
    that did not change since DVC last saw them are not read again."""
    from dvc_data.hashfile.hash import hash_file

    folder = Path(root).resolve() / DATA_DIR / task_folder
    hashes = {}
    with _repo(root) as repo:
        # detail=True hands each file's stat to the state lookup (one stat per file, not two).
        for parent, _, files in repo.dvcignore.walk(repo.fs, str(folder), detail=True):
            for name, stat in files.items():
                path = f"{parent}{repo.fs.sep}{name}"
                _, info = hash_file(path, repo.fs, "md5", state=repo.state, info=stat)
                hashes[Path(path).relative_to(folder).as_posix()] = info.value
    return hashes


def changes(root: Path, task_folder: str) -> list[str]:
    """How ``data/<task_folder>`` differs from data.dvc: ``added|deleted|modified <path>``
    lines (paths inside data/), empty when it matches.

    DVC's own granular ``status`` cannot answer this: on DVC 3.67 ``status data/<folder>``
    reports the whole ``data`` output as modified when any file under data/ changed, and as
    "not in cache" after a granular pull. So the folder is compared with DVC's listing."""
    expected, found = recorded(root, task_folder), on_disk(root, task_folder)
    name = task_folder.rstrip("/")
    lines = [f"added {name}/{path}" for path in sorted(found.keys() - expected.keys())]
    lines += [f"deleted {name}/{path}" for path in sorted(expected.keys() - found.keys())]
    lines += [f"modified {name}/{path}" for path in sorted(found.keys() & expected.keys())
              if found[path] != expected[path]]
    return lines


def absent_folders(root: Path) -> list[str]:
    """Sub-folders of data/ that data.dvc records but that are not on disk, as after a
    per-task pull (empty when data.dvc or its listing is not here to say)."""
    root = Path(root)
    if not (root / POINTER).exists() or not _listing_file(root).exists():
        return []
    names = {entry["relpath"].split("/", 1)[0] for entry in listing(root) if "/" in entry["relpath"]}
    return sorted(name for name in names if not (root / DATA_DIR / name).is_dir())


def is_clean(root: Path, task_folder: str | None = None) -> bool:
    """True when data/ on disk matches data.dvc (DVC's own status check), or with
    ``task_folder``, when that one sub-folder does (the others may differ or be absent)."""
    if task_folder is not None:
        return not changes(root, task_folder)
    with _repo(root) as repo:
        return not repo.status(targets=[_target(root, None)])


def version(root: Path, task_folder: str) -> DataVersion:
    """The data version of one task's sub-folder of data/."""
    entries = sorted(recorded(root, task_folder).items())
    if not entries:
        raise DataError(f"data.dvc holds no files under data/{task_folder.rstrip('/')}/: "
                        "build or import this task's data")
    return DataVersion(pointer_md5(root), task_folder, folder_md5(dict(entries)), len(entries))


def folder_md5(files: dict[str, str]) -> str:
    """A task's data version: the hash of its folder's entries (path -> md5) in DVC's listing."""
    return hashlib.md5(json.dumps(sorted(files.items())).encode()).hexdigest()


def ensure(root: Path, task_folder: str) -> DataVersion:
    """Make sure the task's data is on disk and matches data.dvc; return its version.

    Only ``data/<task_folder>`` counts: it is pulled alone when missing, and only its files are
    compared with data.dvc. Refuses to go on when that folder was edited without recording a
    new version, so no model is ever tied to a version it did not see.
    """
    root = Path(root)
    folder = root / DATA_DIR / task_folder
    if not folder.is_dir():
        try:
            pull(root, task_folder)
        except Exception as error:
            raise DataError(f"{folder} is missing and `dvc pull {DATA_DIR}/{task_folder}` failed ({error}); "
                            "run `zooflow data demo` or `zooflow data import`") from error
    if not folder.is_dir():
        raise DataError(f"{folder} is missing after `dvc pull`: data.dvc has no such folder")
    if not _listing_file(root).exists():
        # The files are here but not the listing to check them against (a copied data/ or a
        # cleaned cache): fetch this folder's objects; the files on disk are left as they are.
        try:
            fetch(root, task_folder)
        except Exception as error:
            raise DataError(f"DVC's listing of {POINTER} is not in {_listing_file(root).parent} and "
                            f"`dvc fetch {DATA_DIR}/{task_folder}` failed ({error})") from error
    changed = changes(root, task_folder)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        # What to do comes before the list of files, so it stays whole on a narrow console.
        raise DataError(f"{folder} differs from {POINTER}; record it with `zooflow data commit` (dvc add + push) "
                        f"before training on it: {shown}")
    return version(root, task_folder)
