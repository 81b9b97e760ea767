"""Ctrl-C and SIGTERM end a run cleanly.

While a model trains, the first signal only asks training to stop: the loop finishes the batch
it is on and raises ``Interrupted`` at the batch boundary, so the last epoch's checkpoint is
intact and the rerun resumes from it. Outside training (or on a second signal) ``Interrupted``
is raised at once. It is a ``KeyboardInterrupt``, so the flow's clean-up runs (the MLflow run is
marked KILLED) and Prefect records the flow run as crashed. The CLI exits 130 (SIGINT) or 143
(SIGTERM) with one line saying how to resume.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_requested: int | None = None  # the signal that asked training to stop
_training = 0                  # > 0 while a training loop checks ``check()`` between batches
last_stop: "Interrupted | None" = None  # the last stop raised (the CLI reports it: typer swallows it)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``where`` says how far training got."""

    def __init__(self, signum: int, where: str = ""):
        global last_stop
        super().__init__(signum, where)
        self.signum, self.where = signum, where
        last_stop = self

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handle(signum, frame) -> None:
    global _requested
    if _training and _requested is None:
        _requested = signum  # let the batch in flight finish
        return
    raise Interrupted(signum)


def install() -> None:
    """Take over SIGINT and SIGTERM (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


def reset() -> None:
    """Forget a stop request (a new command in the same process starts clean)."""
    global _requested, last_stop
    _requested = last_stop = None


@contextmanager
def training():
    """Mark a training loop: signals wait for its next batch boundary."""
    global _training
    # Prefect puts its own SIGTERM handler in place while a flow runs (it would end the run
    # mid-batch); during training ours takes over again, and Prefect's comes back afterwards.
    previous = {}
    if _training == 0 and threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    _training += 1
    try:
        yield
    finally:
        _training -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def check(where: str) -> None:
    """Called between batches: raise ``Interrupted`` if a stop was asked for."""
    if _requested is not None:
        raise Interrupted(_requested, where)


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask training to stop as a signal would (tests, and code that stops a run itself)."""
    global _requested
    _requested = signum
