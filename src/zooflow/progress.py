"""Progress lines for the long phases outside the training epochs: training the FID judge,
scoring a split with BERT, AnoGAN's latent search, building a manifest over tens of thousands
of files.

Lines, not a redrawn bar: they reach every place a run is watched from (a terminal, CI logs,
the Prefect UI, which forwards the ``zooflow`` logger) and stay there, so the phase times of a
run can be read afterwards. One line when a phase starts (what and how much), one at most
every ``every`` seconds while it runs (counts, share, elapsed time), one when it ends.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("zooflow")


class Phase:
    """One long phase; ``advance(n)`` after each unit of work. Use as a context manager."""

    def __init__(self, name: str, total: int, unit: str = "items", every: float = 10.0):
        self.name, self.total, self.unit, self.every = name, int(total), unit, every
        self.done = 0
        self.started = self._last_line = 0.0

    def __enter__(self) -> "Phase":
        self.started = self._last_line = time.perf_counter()
        log.info("%s: %s %s ...", self.name, f"{self.total:,}", self.unit)
        return self

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more units done; print a line when ``every`` seconds have passed."""
        self.done += count
        now = time.perf_counter()
        if now - self._last_line >= self.every and self.done < self.total:
            self._last_line = now
            share = self.done / self.total if self.total else 1.0
            log.info("%s: %s/%s %s (%.0f%%), %.0f s", self.name, f"{self.done:,}", f"{self.total:,}", self.unit,
                     100 * share, now - self.started)

    @property
    def seconds(self) -> float:
        """Seconds since the phase started."""
        return time.perf_counter() - self.started

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            log.info("%s: done, %s %s in %.1f s", self.name, f"{self.done:,}", self.unit, self.seconds)
        else:  # the error itself is reported by whoever handles it; say where the phase stood
            log.info("%s: stopped after %s/%s %s, %.1f s", self.name, f"{self.done:,}", f"{self.total:,}",
                     self.unit, self.seconds)


def phase(name: str, total: int, unit: str = "items", every: float = 10.0) -> Phase:
    """A progress reporter for a phase of ``total`` ``unit``s (see ``Phase``)."""
    return Phase(name, total, unit, every)
