"""``silenced_prints``: what a library prints to stdout is swallowed even under a patched
``print`` (Prefect's ``log_prints`` replaces ``builtins.print`` with a function that logs what
goes to stdout, which a stdout redirection alone does not stop)."""

from __future__ import annotations

import builtins
import sys

from zooflow.quiet import silenced_prints


def test_prints_to_stdout_are_swallowed_and_others_pass(capsys):
    with silenced_prints() as swallowed:
        print("creating index...")
        print("a", "b", sep="-", end="!\n")
        sys.stdout.write("direct\n")
        print("to stderr", file=sys.stderr)
    print("after")
    out, err = capsys.readouterr()
    assert swallowed.getvalue() == "creating index...\na-b!\ndirect\n"
    assert out == "after\n" and err == "to stderr\n"


def test_a_patched_print_sees_nothing_printed_to_stdout_and_is_restored(monkeypatch):
    seen = []

    def logging_print(*args, **kwargs):  # what Prefect's print_as_log does with stdout prints
        seen.append((args, kwargs.get("file")))

    monkeypatch.setattr(builtins, "print", logging_print)
    with silenced_prints():
        print("Average Precision (AP) @[ IoU=0.50:0.95 ] = 0.656")
        print("kept", file=sys.stderr)
    assert seen == [(("kept",), sys.stderr)]
    assert builtins.print is logging_print
    try:
        with silenced_prints():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert builtins.print is logging_print
