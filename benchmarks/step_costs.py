"""The fixed cost, in seconds, of every pipeline step other than training, per task model.

    .venv/bin/python benchmarks/step_costs.py                       # every model with a smoke profile
    .venv/bin/python benchmarks/step_costs.py --models vgg16-transfer sentiment:bert --repeat 2

A throwaway project (git, DVC with a local remote, the demo data of the chosen tasks, the real
task configs with a lenient policy so a smoke model can become champion; ``tests/conftest.py``
``make_project``) in a temp folder. Each model's run calls the steps of ``zooflow.steps`` one by
one, as ``flows/pipeline.py`` chains them, each timed:

    start_run, data (prepare_data), validate cold (manifest cache emptied first), validate warm
    (the same call again: the cached manifest), train, evaluate, register, promote, card, finish

Prefect is left out (``zooflow run`` adds its temporary API server, ~20 s on 2 cores, and a
little per task); the heavy imports a fresh ``zooflow run`` process pays are timed once, first,
in a table of their own. ``--repeat 2`` runs each model twice: the second run finds the
caches warm and, when the first became champion, evaluate re-scores that champion.

Prints the tables and writes ``step_costs.json`` (to ``$OUT`` when set, else benchmarks/results/).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import harness
from harness import Column

STEPS = ["start_run", "data", "validate_cold", "validate_warm", "train", "evaluate", "register", "promote", "card",
         "finish"]
# What a fresh `zooflow run` process imports before its first step can start, in this order.
HEAVY_IMPORTS = ["torch", "torchvision", "mlflow", "dvc.repo", "great_expectations", "transformers", "prefect"]


def time_imports() -> list[dict]:
    """Seconds of each heavy import, in order (each one's own share: what came before is loaded)."""
    rows = []
    for name in HEAVY_IMPORTS:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
            seconds, note = time.perf_counter() - started, ""
        except ImportError as error:
            seconds, note = None, f"not installed ({error})"
        rows.append({"module": name, "seconds": seconds, "note": note})
    return rows


def throwaway_project(folder: Path, folders: list[str]) -> Path:
    """The test suite's project: git, DVC and the demo data of ``folders``, committed."""
    sys.path.insert(0, str(harness.REPO))
    from tests.conftest import make_project

    return make_project(folder, policy={"threshold": 0.0, "margin": 0.01}, datasets=tuple(folders))


def pipeline_run(task_name: str, model_name: str, profile: str, overrides: dict) -> dict:
    """One run of the steps, each timed; a failing step ends the run (marked FAILED) and is noted."""
    from zooflow import steps
    from zooflow.validation import manifest_cache

    seconds: dict[str, float] = {}
    values: dict[str, object] = {}

    def timed(name: str, call):
        started = time.perf_counter()
        values[name] = call()
        seconds[name] = time.perf_counter() - started
        return values[name]

    run = timed("start_run", lambda: steps.start_run(task_name, model_name, profile, overrides=overrides or None))
    try:
        data = timed("data", lambda: steps.prepare_data(run))
        shutil.rmtree(manifest_cache.cache_folder(), ignore_errors=True)  # cold: decode and hash every file
        timed("validate_cold", lambda: steps.validate_data(run, data))
        validation = timed("validate_warm", lambda: steps.validate_data(run, data))
        trained = timed("train", lambda: steps.train(run, data.task_md5))
        evaluation = timed("evaluate", lambda: steps.evaluate(run, trained))
        registered = timed("register", lambda: steps.register(run, data, validation, trained, evaluation))
        decision = timed("promote", lambda: steps.promote(run, registered, evaluation))
        timed("card", lambda: steps.write_card(run, data, validation, trained, evaluation, registered, decision))
    except Exception as error:  # one model's failure is a row, not the end of the benchmark
        steps.finish(run, "FAILED")
        traceback.print_exc()
        return {**seconds, "error": f"{type(error).__name__}: {error}"[:300]}
    timed("finish", lambda: steps.finish(run, "FINISHED"))
    return {**seconds, "alias": decision.alias, "champion_rescored": evaluation.champion_metrics is not None,
            "rows": validation.rows}


COLUMNS = [Column("task", "task"), Column("model", "model"), Column("run", "run"), Column("rows", "manifest rows"),
           *[Column(step, step.replace("_", " "), "{:.2f}") for step in STEPS],
           Column("fixed", "all but train", "{:.2f}"), Column("alias", "alias"),
           Column("champion_rescored", "champion re-scored")]
IMPORT_COLUMNS = [Column("module", "module"), Column("seconds", "first import s", "{:.2f}"), Column("note", "note")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=["smoke", "demo", "book"])
    parser.add_argument("--repeat", type=int, default=1, help="pipeline runs per model (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway project (its path is printed)")
    harness.add_common_arguments(parser, "epochs=2")
    args = parser.parse_args(argv)

    imports = time_imports()  # first: nothing heavy is loaded yet
    print(harness.table(imports, IMPORT_COLUMNS), flush=True)
    harness.set_threads(args.threads)
    from zooflow import config

    pairs = harness.selected(config.all_runs(args.profile), args.models)
    overrides = harness.parse_sets(args.sets)
    folders = sorted({config.resolve(t, m, args.profile).data.folder for t, m in pairs})
    workdir = Path(tempfile.mkdtemp(prefix="zooflow-steps-"))
    started = time.perf_counter()
    root = throwaway_project(workdir / "project", folders)
    setup = time.perf_counter() - started
    print(f"\nthrowaway project {root} ({', '.join(folders)}): {setup:.1f} s", flush=True)

    sys.path.insert(0, str(harness.REPO))
    from tests.conftest import using_project

    rows = []
    with using_project(root):
        for task_name, model_name in pairs:
            for run_index in range(1, args.repeat + 1):
                print(f"{task_name}:{model_name} [{args.profile}] run {run_index} ...", flush=True)
                row = {"task": task_name, "model": model_name, "run": run_index,
                       **pipeline_run(task_name, model_name, args.profile, overrides)}
                row["fixed"] = sum(row.get(step, 0.0) for step in STEPS if step not in ("train", "validate_warm"))
                rows.append(row)
                print("  " + " ".join(f"{s}={row[s]:.2f}" for s in STEPS if s in row), flush=True)
    print()
    print(harness.table(rows, COLUMNS))
    print("\nall but train = start_run + data + validate cold + evaluate + register + promote + card + finish")
    path = harness.write_json("step_costs", {"machine": harness.machine(), "args": vars(args),
                                             "project_setup_s": setup, "imports": imports, "rows": rows})
    print(f"written: {path}")
    if args.keep:
        print(f"project kept: {root}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
