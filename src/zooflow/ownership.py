"""Which process owns a run, and which run owns a checkpoint folder.

Two runs never share mutable state. A run's MLflow record carries its process identity (host,
pid and the pid's start time, so a recycled pid is not mistaken for the original), which lets a
later run tell a crashed run (RUNNING, process gone) from a live one. A checkpoint folder is
keyed by what training depends on (model, profile, config, data), and only the run holding its
lock may use it: the lock is taken when training starts and dropped when the run ends, so a
checkpoint found under a free lock was left by a run that died or failed - exactly the one to
resume - and never by a run that is still evaluating or registering its own weights.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zooflow import locks
from zooflow.watchdog import start_time

HOST_TAG, PID_TAG, STARTED_TAG = "zooflow.host", "zooflow.pid", "zooflow.pid_started"
OWNER_FILE = "owner.json"


def identity() -> dict[str, str]:
    """This process, as tags for its MLflow run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), STARTED_TAG: start_time(os.getpid())}


def is_gone(tags: dict[str, str]) -> bool:
    """True when the process those tags name has ended. Only answerable on the same host
    (False elsewhere: another machine's run is left to that machine)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG):
        return False
    started = start_time(int(tags[PID_TAG]))
    return started == "" or started != tags.get(STARTED_TAG, started)


@dataclass
class CheckpointClaim:
    """The folder a run checkpoints into, and the lock that makes it the run's own."""

    folder: Path
    lock: locks.Lock | None   # None: a private folder nobody else can know of
    shared_key: bool          # True: the key folder (resumable by a later run of the same key)
    previous_owner: str       # the run whose checkpoint is resumed ('' when none)

    def release(self, keep: bool) -> None:
        """End the claim; ``keep`` leaves a resumable checkpoint behind (key folder only)."""
        if not keep or not self.shared_key:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.lock is not None:
            self.lock.release()


_CLAIMS: dict[str, CheckpointClaim] = {}


def claim_checkpoints(key_folder: Path, run_id: str, is_finished: Callable[[str], bool]) -> CheckpointClaim:
    """The checkpoint folder for ``run_id``: the key folder when no live run holds it (resuming
    whatever a dead or failed run left there, unless ``is_finished(that run)``), else a private
    folder of this run's own, trained from scratch."""
    key_folder = Path(key_folder)
    # The lock lives apart from the checkpoints, and is never deleted: removing a lock file
    # that another process has open would let two processes each hold "the" lock.
    lock = locks.try_lock(key_folder.parent.parent / "locks" / "checkpoints" / f"{key_folder.name}.lock")
    if lock is None:
        claim = CheckpointClaim(key_folder.with_name(f"{key_folder.name}.run-{run_id}"), None, False, "")
    else:
        owner = _read_owner(key_folder)
        if owner and is_finished(owner):
            shutil.rmtree(key_folder, ignore_errors=True)  # a finished run's leftovers are not a resume point
            owner = ""
        claim = CheckpointClaim(key_folder, lock, True, owner)
    claim.folder.mkdir(parents=True, exist_ok=True)
    (claim.folder / OWNER_FILE).write_text(json.dumps({"run_id": run_id, **identity()}))
    _CLAIMS[run_id] = claim
    return claim


def _read_owner(folder: Path) -> str:
    try:
        return json.loads((folder / OWNER_FILE).read_text()).get("run_id", "")
    except (OSError, ValueError):
        return ""


def release_checkpoints(run_id: str, keep: bool) -> None:
    """Drop the run's claim (no-op when it holds none)."""
    claim = _CLAIMS.pop(run_id, None)
    if claim is not None:
        claim.release(keep)
