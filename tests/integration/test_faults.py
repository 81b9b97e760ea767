"""Faults end cleanly: Ctrl-C and SIGTERM stop training at a batch boundary, keep the last
checkpoint, mark the MLflow run KILLED and exit 130/143 saying how to resume; after a kill -9
the temporary Prefect server goes too, and the next run marks the dead run KILLED and resumes
its checkpoint. Real processes, real signals."""

import signal
import time
from pathlib import Path

import pytest
import torch

from tests.processes import prefect_api_url, set_profile, start, wait_for
from zooflow import watchdog
from zooflow.registry import tracking

MODEL = "vgg16-finetune"
ARGS = ("run", "classification", "--model", MODEL, "--profile", "smoke")
EPOCHS = 60  # smoke-sized epochs (~0.15 s each): long enough to interrupt after the second


@pytest.fixture
def slow_project(lenient_project):
    set_profile(lenient_project, "classification", MODEL, "smoke", epochs=EPOCHS)
    return lenient_project


def runs() -> dict:
    """run id -> run, for this project's training runs (newest first)."""
    client = tracking.connect()
    experiment = client.get_experiment_by_name("zooflow-classification")
    return {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}


def checkpoints(root: Path) -> list[Path]:
    return sorted((root / ".zooflow" / "checkpoints").glob("*/last.pt"))


def rerun_and_check_resume(root: Path, log: Path, dead_run: str, dead_epoch: int) -> None:
    process = start(root, *ARGS, prefect_api=prefect_api_url(), log=log)
    assert process.wait(timeout=300) == 0, log.read_text()
    newest = next(run for run_id, run in runs().items() if run_id != dead_run and run.info.status == "FINISHED")
    assert newest.data.tags["resumed_from_run"] == dead_run
    assert int(newest.data.tags["resumed_from_epoch"]) == dead_epoch
    assert not checkpoints(root)  # finished: nothing left to resume


# The rerun's resume is checked once (after Ctrl-C); SIGTERM leaves the same checkpoint behind.
@pytest.mark.parametrize("signum, code, rerun", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_training_cleanly_and_the_rerun_resumes(slow_project, prefect_server, tmp_path, signum, code,
                                                               rerun):
    log = tmp_path / "interrupted.log"
    process = start(slow_project, *ARGS, prefect_api=prefect_api_url(), log=log)
    wait_for(log, f"epoch 2/{EPOCHS}", process)
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    output = log.read_text()
    name = signal.Signals(signum).name
    assert f"zooflow: stopped by {name} during epoch" in output, output
    assert f"Resume with: zooflow {' '.join(ARGS)}" in output
    assert "Traceback" not in output
    (killed,) = runs().values()
    assert killed.info.status == "KILLED"
    (saved,) = checkpoints(slow_project)
    epoch = torch.load(saved, weights_only=True)["epoch"]
    assert 2 <= epoch < EPOCHS  # whole epochs only: the stop came at a batch boundary
    if rerun:
        rerun_and_check_resume(slow_project, tmp_path / "rerun.log", killed.info.run_id, epoch)


def _alive(pid: int, started: str) -> bool:
    return watchdog.still_running(pid, started)


def test_kill_9_takes_the_prefect_server_along_and_the_next_run_marks_the_dead_run(slow_project, prefect_server,
                                                                                  tmp_path):
    log = tmp_path / "killed.log"
    process = start(slow_project, *ARGS, log=log)  # no PREFECT_API_URL: it starts its own temporary server
    wait_for(log, f"epoch 2/{EPOCHS}", process)
    family = watchdog.descendants(process.pid)
    servers = [pid for pid in family if "uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    assert servers, "the run should have started Prefect's temporary server"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid, started) for pid, started in family.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid, started in family.items() if _alive(pid, started)], "processes outlived kill -9"
    (dead,) = runs().values()
    assert dead.info.status == "RUNNING"  # nothing could mark it: the process died at once
    epoch = torch.load(checkpoints(slow_project)[0], weights_only=True)["epoch"]

    rerun_and_check_resume(slow_project, tmp_path / "rerun.log", dead.info.run_id, epoch)
    marked = runs()[dead.info.run_id]
    assert marked.info.status == "KILLED"
    assert "marked KILLED by run" in marked.data.tags["zooflow.killed_note"]
