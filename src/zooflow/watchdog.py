"""A guard that outlives its parent by a moment: when the zooflow process ends, however it ends
(``kill -9`` included), the processes it started go too.

Prefect's temporary API server (and any other helper process a run starts) is a child of the
zooflow process. A normal exit or a handled Ctrl-C/SIGTERM stops it through ``atexit``; a
``kill -9`` gives no chance to, and the server would run on forever. The guard is a separate
small process holding the read end of a pipe whose write end only the parent holds: every half
second it notes the parent's descendants (pid + start time, so a recycled pid is never hit);
when the pipe reports end-of-file - the parent is gone - it terminates those it noted.

    python -m zooflow.watchdog   (started by ``start()``; not meant to be run by hand)
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after "(comm)" (which may itself hold spaces or ")"),
    so field 3 of the man page is index 0; raises OSError when the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (stat field 22), or '' when it is gone.
    With the pid it names one process for good: a pid is recycled, a (pid, start) pair is not."""
    try:
        return _stat_fields(pid)[19]
    except OSError:
        return ""


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every process visible in /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name)
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> dict[int, str]:
    """Every descendant of ``root``: pid -> start time."""
    table = _table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, queue = {}, list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found[pid] = table[pid][1]
        queue += children.get(pid, [])
    return found


def still_running(pid: int, started: str) -> bool:
    """Whether the process that (pid, start time) names still runs: not ended, not replaced by
    another process under a recycled pid, and no zombie (an ended child not yet reaped)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def _terminate(noted: dict[int, str]) -> None:
    for pid, started in noted.items():
        if still_running(pid, started):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(still_running(p, s) for p, s in noted.items()):
        time.sleep(0.1)
    for pid, started in noted.items():
        if still_running(pid, started):
            os.kill(pid, signal.SIGKILL)


def guard(parent: int, pipe_fd: int) -> None:
    """The guard's loop: note the parent's descendants until the pipe closes, then end them."""
    me = os.getpid()
    noted: dict[int, str] = {}
    while True:
        ready, _, _ = select.select([pipe_fd], [], [], POLL_SECONDS)
        if ready and not os.read(pipe_fd, 1024):
            break  # end of file: the parent is gone
        current = descendants(parent)
        current.pop(me, None)
        noted.update(current)
        noted = {pid: started for pid, started in noted.items() if still_running(pid, started)}
    _terminate(noted)


_GUARD: subprocess.Popen | None = None


def start() -> None:
    """Start the guard for this process (once; Linux only, a no-op elsewhere)."""
    global _GUARD
    if _GUARD is not None or not Path("/proc/self/stat").exists():
        return
    # stdin=PIPE: the write end stays in this process (close-on-exec, so no child inherits it).
    _GUARD = subprocess.Popen([sys.executable, "-m", "zooflow.watchdog", str(os.getpid())],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # a Ctrl-C to the terminal's group spares it


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guard(int(sys.argv[1]), sys.stdin.fileno())
