"""Silencing libraries that report on ``print`` (pycocotools prints every step and a 12-line summary).

Redirecting ``sys.stdout`` is not enough inside a Prefect run: a flow with ``log_prints=True``
replaces ``builtins.print`` with a function that turns whatever is printed to stdout into an
INFO log line, wherever ``sys.stdout`` points at the time. :func:`silenced_prints` swaps
``print`` itself for the duration (and redirects stdout, for code that writes to it directly).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced_prints() -> Iterator[io.StringIO]:
    """Swallow what is printed to stdout inside the block (Prefect's print patch or not); prints
    to another file (``file=sys.stderr``, an open file) go through. Yields the swallowed text."""
    swallowed = io.StringIO()
    patched = builtins.print  # Prefect's print_as_log inside a run, the builtin outside

    def to_buffer(*args, sep=" ", end="\n", file=None, flush=False):
        if file is None or file is sys.stdout or file is swallowed:
            swallowed.write((" " if sep is None else sep).join(map(str, args)) + ("\n" if end is None else end))
        else:
            patched(*args, sep=sep, end=end, file=file, flush=flush)

    builtins.print = to_buffer
    try:
        with contextlib.redirect_stdout(swallowed):
            yield swallowed
    finally:
        builtins.print = patched

