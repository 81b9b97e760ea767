"""Running the real ``zooflow`` entry point in-process, as a user's shell would see it:
exit code and everything printed (stdout and stderr together)."""

from __future__ import annotations

import contextlib
import io
import sys

from zooflow import cli


def run_cli(*args: str) -> tuple[int, str]:
    """``zooflow ARGS`` through ``cli.main`` (argument parsing, error handling and exit codes
    included); returns (exit code, output)."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = ["zooflow", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                cli.main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved
    return code, out.getvalue()


def assert_one_clear_message(output: str, *names: str) -> None:
    """No traceback, and the message names every one of ``names`` (a file, row, key...)."""
    assert "Traceback" not in output, output
    for name in names:
        assert name in output, f"{name!r} not named in:\n{output}"
