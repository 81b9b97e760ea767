"""Whether the data loader keeps up with training: per task model, the training DataLoader's
samples/s against the rate at which the training step consumes samples (goal: ratio > 1).

    .venv/bin/python benchmarks/loader_speed.py                     # every model, smoke and demo profiles
    .venv/bin/python benchmarks/loader_speed.py --profile demo --models classification --batches 20

For each model's profile, on its demo data:

- loader: ``task.loaders(ctx).train`` iterated alone for ``--batches`` batches, timed from
  creating the iterator (an epoch starts its workers afresh) to the last batch;
- step: the task's ``training_step`` + backward + optimiser step (``harness.bare_pass``) on the
  same number of batches, materialised beforehand, so no loading is in it.

The ratio loader/step must stay above 1. With ``num_workers: 0`` loading and stepping take turns
in one process, so the table also gives the share of an epoch spent loading, step/(loader+step).
The time to build the loaders (tokenising every text, the digit judge of the generation task
the first time) is a per-run cost of its own, in its own column.

Prints one table (medians over ``--rounds``) and writes ``loader_speed.json`` (to ``$OUT`` when
set, else benchmarks/results/).
"""

from __future__ import annotations

import argparse
import sys
import time

import harness
from harness import Column


def loader_pass(loader, count: int) -> tuple[float, int]:
    """Seconds and samples for the first ``count`` batches of a fresh pass over ``loader``."""
    samples = 0
    started = time.perf_counter()
    for index, batch in enumerate(loader):
        samples += harness.batch_samples(batch)
        if index + 1 >= count:
            break
    return time.perf_counter() - started, samples


def measure(task_name: str, model_name: str, profile: str, args, overrides: dict) -> dict:
    """Loader rate against step rate for one model's profile."""
    from zooflow.training.device import pick_device, seed_everything

    task, ctx = harness.context(task_name, model_name, profile, overrides)
    cfg, device = ctx.cfg, pick_device()
    seed_everything(cfg.seed)
    started = time.perf_counter()
    loader = task.loaders(ctx).train
    built = time.perf_counter() - started
    count = min(args.batches, len(loader))  # at most one epoch: a pass never restarts the loader
    model = task.build_model(ctx).to(device)
    start = harness.snapshot(model)
    batches = harness.materialise(loader, count)
    samples = sum(harness.batch_samples(b) for b in batches)
    loader_rates, step_rates = [], []
    for _ in range(args.rounds):
        seconds, loaded = loader_pass(loader, count)
        loader_rates.append(loaded / seconds)
        harness.reset(model, start, cfg.seed)
        step_rates.append(samples / harness.bare_pass(task, model, ctx, batches, task.optimizers(model, ctx), device))
    loader_sps, step_sps = harness.median(loader_rates), harness.median(step_rates)
    return {"task": task_name, "model": model_name, "profile": profile, "batch_size": harness.batch_samples(batches[0]),
            "batches": count, "epoch_batches": len(loader), "num_workers": getattr(loader, "num_workers", None),
            "loaders_built_s": built, "loader_sps": loader_sps, "step_sps": step_sps, "ratio": loader_sps / step_sps,
            "loading_share": step_sps / (loader_sps + step_sps),
            "rounds": {"loader_sps": loader_rates, "step_sps": step_rates}}


COLUMNS = [Column("task", "task"), Column("model", "model"), Column("profile", "profile"),
           Column("batch_size", "batch"), Column("batches", "batches"), Column("num_workers", "workers"),
           Column("loader_sps", "loader samples/s", "{:.0f}"), Column("step_sps", "step samples/s", "{:.1f}"),
           Column("ratio", "loader/step", "{:.1f}"), Column("loading_share", "loading share (0 workers)", "{:.1%}"),
           Column("loaders_built_s", "loaders built s", "{:.2f}"), Column("verdict", "> 1")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["both", "smoke", "demo", "book"], default="both")
    parser.add_argument("--batches", type=int, default=20, help="batches per pass, at most one epoch (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="loader and step passes per model (default 3)")
    harness.add_common_arguments(parser, "num_workers=2")
    args = parser.parse_args(argv)
    overrides = harness.start(args)
    from zooflow.config import all_runs

    profiles = ["smoke", "demo"] if args.profile == "both" else [args.profile]
    rows = []
    for profile in profiles:
        for task_name, model_name in harness.selected(all_runs(profile), args.models):
            print(f"{task_name}:{model_name} [{profile}] ...", flush=True)
            row = measure(task_name, model_name, profile, args, overrides)
            row["verdict"] = "ok" if row["ratio"] > 1 else "LOADER-BOUND"
            rows.append(row)
            print(f"  loader {row['loader_sps']:.0f}/s, step {row['step_sps']:.1f}/s", flush=True)
    print()
    print(harness.table(rows, COLUMNS))
    path = harness.write_json("loader_speed", {"machine": harness.machine(), "args": vars(args), "rows": rows})
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
