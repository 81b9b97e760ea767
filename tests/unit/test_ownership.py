"""A checkpoint folder belongs to one live run; a crashed run's checkpoint is resumed by the
next run, a finished run's never; a RUNNING run whose process is gone is found out."""

import subprocess
import sys

from zooflow import locks, ownership

HOLD = """
import sys, time
from pathlib import Path
from zooflow import ownership
ownership.claim_checkpoints(Path(sys.argv[1]), "run-a", is_finished=lambda run: False)
print("claimed", flush=True)
time.sleep(60)
"""


def test_a_live_runs_folder_is_never_shared_and_its_leftovers_are_resumed_after_it_dies(tmp_path):
    key = tmp_path / ".zooflow" / "checkpoints" / "model-key"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(key)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        (key / "last.pt").write_bytes(b"run-a's epoch 3")
        other = ownership.claim_checkpoints(key, "run-b", is_finished=lambda run: False)
        assert not other.shared_key and other.folder != key and other.previous_owner == ""
        assert not (other.folder / "last.pt").exists()  # trains from scratch, alone
        other.release(keep=True)
        assert not other.folder.exists()  # a private folder is nobody's resume point
    finally:
        holder.kill()
        holder.wait()
    # run-a died without finishing: the next claim takes over its checkpoint.
    resumed = ownership.claim_checkpoints(key, "run-c", is_finished=lambda run: False)
    assert resumed.shared_key and resumed.previous_owner == "run-a"
    assert (key / "last.pt").read_bytes() == b"run-a's epoch 3"
    ownership.release_checkpoints("run-c", keep=True)
    assert (key / "last.pt").exists()


def test_a_finished_runs_leftover_checkpoint_is_not_a_resume_point(tmp_path):
    key = tmp_path / ".zooflow" / "checkpoints" / "model-key"
    first = ownership.claim_checkpoints(key, "run-a", is_finished=lambda run: False)
    (key / "last.pt").write_bytes(b"final epoch of run-a")
    first.lock.release()  # as if run-a finished but could not delete its folder
    second = ownership.claim_checkpoints(key, "run-b", is_finished=lambda run: run == "run-a")
    assert second.shared_key and second.previous_owner == "" and not (key / "last.pt").exists()
    ownership.release_checkpoints("run-b", keep=False)
    assert not key.exists()


def test_a_lock_is_free_again_when_its_holder_is_killed(tmp_path):
    path = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from zooflow import locks
lock = locks.try_lock({str(path)!r}); print("held", flush=True); time.sleep(60)"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert locks.try_lock(path) is None
    holder.kill()
    holder.wait()
    lock = locks.try_lock(path)
    assert lock is not None
    lock.release()


def test_a_process_is_gone_when_its_pid_ended_or_was_reused():
    finished = subprocess.run([sys.executable, "-c", "from zooflow import ownership; print(ownership.identity())"],
                              capture_output=True, text=True, check=True)
    tags = eval(finished.stdout)  # noqa: S307 - our own child's repr of a dict of strings
    assert ownership.is_gone(tags)
    assert not ownership.is_gone(ownership.identity())
    recycled = {**ownership.identity(), ownership.STARTED_TAG: "1"}  # same pid, another start time
    assert ownership.is_gone(recycled)
    elsewhere = {**tags, ownership.HOST_TAG: "another-machine"}
    assert not ownership.is_gone(elsewhere)  # not ours to judge
