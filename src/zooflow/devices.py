"""How many devices a training step uses, and the GPU slots it takes on a shared machine.

``devices: N`` (N > 1) trains one run on N devices: the train step starts

    python -m torch.distributed.run --standalone --nproc_per_node=N -m zooflow.devices <spec.json>

(torchrun, from the project's own interpreter), and each of the N processes joins the process
group (NCCL on CUDA, gloo on CPU), fits its share with ``steps.fit_model`` under DDP and exits.
The processes start no MLflow run of their own: ``spec.json`` carries the run the flow opened,
and only rank 0 logs its epochs, writes the checkpoints and leaves the weights. A rerun resumes
from rank 0's checkpoint on every rank. ``devices: 1`` (the default) never comes here.

``concurrency_limit: NAME`` makes the step hold ``devices`` slots of the Prefect global
concurrency limit ``NAME`` while it trains, so runs scheduled together on one GPU machine wait
for each other instead of overcommitting it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from zooflow import settings
from zooflow.errors import TrainingDiverged, UserError
from zooflow.step_results import Run

log = logging.getLogger("zooflow")

SPEC, RESULT, FAILURE, ERRORS = "spec.json", "result.json", "failure.json", "torchrun-stderr.log"
# A torchrun whose processes are stopped gets this long to end them before it is killed.
STOP_GRACE_SECONDS = 60


def several(cfg) -> bool:
    """Whether the run trains on several devices (an ``epochs: 0`` run trains nothing anywhere)."""
    return cfg.devices > 1 and cfg.epochs > 0


@contextmanager
def slots(cfg):
    """Hold ``cfg.devices`` slots of the Prefect global concurrency limit ``cfg.concurrency_limit``
    (waiting for them); nothing when it is unset. A limit that does not exist is an error: a
    typo must not let every run through."""
    if cfg.concurrency_limit is None:
        yield
        return
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency

    name = cfg.concurrency_limit
    log.info("taking %d slot(s) of the concurrency limit %r (waiting while other runs hold them)", cfg.devices, name)
    try:
        with concurrency(name, occupy=cfg.devices, strict=True):
            yield
    except ConcurrencySlotAcquisitionError as error:  # raised on taking the slots, never by training
        raise UserError(f"concurrency_limit {name!r}: cannot take {cfg.devices} slot(s) on the Prefect server "
                        f"({error}). Create the limit with `prefect gcl create {name} --limit SLOTS` (SLOTS: "
                        f"how many devices may train at once, at least devices) or unset concurrency_limit") from None


def launch(run: Run, checkpoints: Path, workdir: Path):
    """Fit the run's model in ``cfg.devices`` processes under torchrun; the ``TrainResult``
    rank 0 reported."""
    import torch

    from zooflow.steps import run_config
    from zooflow.training.engine import TrainResult

    cfg = run_config(run)
    if torch.cuda.is_available() and torch.cuda.device_count() < cfg.devices:
        raise UserError(f"devices: {cfg.devices}, but this machine has {torch.cuda.device_count()} GPU(s); "
                        f"set devices to at most that (--set devices=N)")
    folder = workdir / "devices"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT, FAILURE):
        (folder / stale).unlink(missing_ok=True)
    (folder / SPEC).write_text(json.dumps({"run": asdict(run), "checkpoints": str(checkpoints),
                                           "workdir": str(workdir)}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.devices}",
               "-m", "zooflow.devices", str(folder / SPEC)]
    # The children find the same project (and so the same tracking store) whatever their cwd.
    env = {**os.environ, "ZOOFLOW_HOME": str(settings.project_root())}
    # torchrun would set 1 thread per process (and print a banner saying so); on a CPU the
    # processes share the cores between them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.devices)))
    log.info("training %s on %d devices: %s", cfg.registered_name, cfg.devices, " ".join(command[2:]))
    # rank 0's epoch lines come through; torchrun's reports and the processes' tracebacks go to
    # a file: a user's error is told once, as the step's own, not as every rank's traceback
    with open(folder / ERRORS, "w") as errors:
        code = _wait(subprocess.Popen(command, env=env, stderr=errors))
    failure = folder / FAILURE
    if failure.is_file():
        raise _reraised(json.loads(failure.read_text()), folder / ERRORS)
    if code != 0:
        tail = "\n".join((folder / ERRORS).read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"torchrun training {cfg.registered_name} on {cfg.devices} devices exited with {code}; "
                           f"the end of {folder / ERRORS}:\n{tail}")
    reported = json.loads((folder / RESULT).read_text())
    return TrainResult(device=torch.device(reported["device"]), epochs=reported["epochs"],
                       resumed_from_epoch=reported["resumed_from_epoch"], finished=True)


def _wait(process: subprocess.Popen) -> int:
    """The exit code of torchrun; a stop (Ctrl-C, SIGTERM) is passed on to it, so its processes
    finish their batch and keep their checkpoint, before the stop goes on up."""
    try:
        return process.wait()
    except BaseException:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


def _reraised(failure: dict, errors: Path) -> Exception:
    """The error a training process wrote, as the step's own: a user's error stays one (a bug
    names the file that holds its traceback)."""
    kind = {"TrainingDiverged": TrainingDiverged, "UserError": UserError}.get(failure["kind"])
    if kind is None:
        return RuntimeError(f"rank {failure['rank']}: {failure['kind']}: {failure['message']} (traceback: {errors})")
    return kind(failure["message"])


def main(spec_file: str) -> None:
    """One training process under torchrun: join the group, fit this rank's share, report."""
    from zooflow import interrupts, steps
    from zooflow.training import distributed

    settings.apply_offline_defaults()
    interrupts.install()
    spec_path = Path(spec_file)
    spec = json.loads(spec_path.read_text())
    ranks = distributed.from_environment()
    if ranks.main:  # the run's epochs, as one process would log them
        logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s", stream=sys.stdout)
    distributed.join(ranks)
    try:
        result = steps.fit_model(Run(**spec["run"]), Path(spec["checkpoints"]), Path(spec["workdir"]), ranks)
        if ranks.main:
            (spec_path.parent / RESULT).write_text(json.dumps({
                "device": str(result.device), "epochs": result.epochs,
                "resumed_from_epoch": result.resumed_from_epoch}))
    except Exception as error:
        # The first error any rank meets is the run's; the others mostly see a broken group.
        kind = "TrainingDiverged" if isinstance(error, TrainingDiverged) else \
            "UserError" if isinstance(error, UserError) else type(error).__name__
        failure = spec_path.parent / FAILURE
        try:
            with open(failure, "x") as file:
                json.dump({"rank": ranks.rank, "kind": kind, "message": str(error)}, file)
        except FileExistsError:
            pass
        if isinstance(error, UserError):
            sys.exit(1)  # the message reaches the user through the step; a traceback would add nothing
        raise
    finally:
        distributed.leave()


if __name__ == "__main__":
    main(sys.argv[1])
