"""The training engine's cost over a bare PyTorch loop, per model (goal: engine/bare >= 0.98).

    .venv/bin/python benchmarks/engine_overhead.py                      # every smoke model + the demo models of ch. 1 and 7
    .venv/bin/python benchmarks/engine_overhead.py --models vgg16 --rounds 3 --batches 10
    .venv/bin/python benchmarks/engine_overhead.py --profile smoke      # only the smoke models

For each model: one set of batches from the task's own training loader, materialised once and
shared, so the DataLoader is not what is measured (repeated until a bare pass lasts
``--min-seconds``: a smoke model's step takes a few milliseconds). Then, in one process and
from the same starting weights and seed each time, alternately (engine, bare / bare, engine,
... so neither always goes first):

- engine: ``engine.train`` over those batches (one epoch, no validation, a fresh checkpoint
  folder), timed from its first batch to the end of its last step, so its setup and its
  per-epoch checkpoint are not in the step rate; the checkpoint write is timed on its own;
- bare: the task's ``training_step`` then zero_grad / backward / step (``harness.bare_pass``).

The first row, "(null step)", is a probe: a 1x1 linear layer whose step costs next to nothing,
so the engine's fixed cost per step (progress bar, Ctrl-C check, the loss's ``.item()`` and
NaN check, figure sums) shows bare, in microseconds. A model's ratio is then about
step / (step + that cost): the smaller a model's step, the more it shows.

Prints one table (medians over the rounds) and writes ``engine_overhead.json`` (to ``$OUT``
when set, else ``benchmarks/results/``). A warm-up round of each runs first and is discarded.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import Column

# Chapters 1 and 7 at their demo profile, beside every task's smoke model.
DEMO_MODELS = [("classification", "vgg16-transfer"), ("classification", "vgg16-finetune"),
               ("classification", "mobilenetv2-transfer"), ("sentiment", "transformer"), ("sentiment", "bert")]
GOAL = 0.98
MAX_REPEAT = 100  # --min-seconds repeats a model's batches at most this often


def runs(profile: str) -> list[tuple[str, str, str]]:
    """(task, model, profile) to measure: every smoke model, the chapter 1/7 demo models, or both."""
    from zooflow.config import all_runs

    smoke = [(t, m, "smoke") for t, m in all_runs("smoke")]
    demo = [(t, m, "demo") for t, m in DEMO_MODELS]
    return {"smoke": smoke, "demo": demo, "all": smoke + demo}[profile]


def engine_options(cfg, task):
    """The run's own engine options (schedule, clipping, accumulation, EMA, bf16/channels_last
    on CUDA), for one epoch over the given batches, without validation or selection."""
    from zooflow.training.engine import Options

    return dataclasses.replace(Options.from_config(cfg, task), epochs=1, max_batches=None, select_metric=None)


def engine_pass(task, model, ctx, batches: list, options, device, show_progress: bool) -> dict:
    """One ``engine.train`` epoch over ``batches``: seconds of its steps, of its checkpoint
    write, of its setup (call to first batch) and of the whole call."""
    from zooflow.training import engine

    optimizers = task.optimizers(model, ctx)  # as engine.fit: the model is on its device already
    timed = harness.TimedBatches(batches, device)
    with tempfile.TemporaryDirectory(prefix="zooflow-engine-") as folder, harness.timed_checkpoints() as writes:
        called = time.perf_counter()
        engine.train(model, task, ctx, engine.Loaders(train=timed, val=None), optimizers, options, Path(folder),
                     show_progress=show_progress)
        finished = time.perf_counter()
    (checkpoint_seconds, checkpoint_bytes), = writes
    return {"steps_s": timed.seconds, "checkpoint_s": checkpoint_seconds, "checkpoint_mb": checkpoint_bytes / 1e6,
            "setup_s": timed.started - called, "call_s": finished - called}


def compare(task, model, ctx, batches: list, seed: int, options, device, args) -> dict:
    """Engine against bare on ``batches``, each pass from the same weights and seed: warm-up
    rounds, then ``args.rounds`` measured rounds alternating which of the two goes first."""
    import torch

    start = harness.snapshot(model)
    # the bare loop runs what the engine runs: bf16 autocast and channels_last where it uses them
    autocast = options.mixed_precision and device.type == "cuda"
    if options.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    def run_engine() -> dict:
        harness.reset(model, start, seed)
        return engine_pass(task, model, ctx, batches, options, device, not args.no_progress)

    def run_bare() -> float:
        harness.reset(model, start, seed)
        return harness.bare_pass(task, model, ctx, batches, task.optimizers(model, ctx), device, autocast)

    for _ in range(args.warmup):  # first passes pay for allocations, lazy inits, caches
        run_engine(), run_bare()
    if args.min_seconds:  # a pass of a few milliseconds is mostly timer and scheduler noise
        once = run_bare()
        if once < args.min_seconds:
            batches = batches * min(math.ceil(args.min_seconds / max(once, 1e-6)), MAX_REPEAT)
    samples = sum(harness.batch_samples(b) for b in batches)
    engine_runs, bare_runs = [], []
    for index in range(args.rounds):
        if index % 2 == 0:
            engine_runs.append(run_engine()), bare_runs.append(run_bare())
        else:
            bare_runs.append(run_bare()), engine_runs.append(run_engine())
    engine_rates = [samples / r["steps_s"] for r in engine_runs]
    bare_rates = [samples / s for s in bare_runs]
    ratios = [e / b for e, b in zip(engine_rates, bare_rates)]  # paired: each round's two passes sat side by side
    # the engine's own cost per step, in microseconds: its step time less the bare loop's
    extra = [(r["steps_s"] - b) / len(batches) * 1e6 for r, b in zip(engine_runs, bare_runs)]
    return {"device": device.type, "batch_size": harness.batch_samples(batches[0]), "batches": len(batches),
            "samples": samples, "engine_sps": harness.median(engine_rates), "bare_sps": harness.median(bare_rates),
            "ratio": harness.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "step_ms": harness.median([s / len(batches) * 1e3 for s in bare_runs]),
            "extra_us_per_step": harness.median(extra),
            "checkpoint_s": harness.median([r["checkpoint_s"] for r in engine_runs]),
            "checkpoint_mb": engine_runs[0]["checkpoint_mb"],
            "setup_s": harness.median([r["setup_s"] for r in engine_runs]),
            "options": dataclasses.asdict(options),
            "rounds": {"engine": engine_runs, "bare_s": bare_runs, "ratios": ratios}}


def measure(task_name: str, model_name: str, profile: str, args, overrides: dict) -> dict:
    """Engine against bare for one model's profile on batches of its own training loader."""
    from zooflow.training.device import pick_device, seed_everything

    task, ctx = harness.context(task_name, model_name, profile, overrides)
    cfg, device = ctx.cfg, pick_device()
    seed_everything(cfg.seed)
    model = task.build_model(ctx).to(device)
    batches = harness.materialise(task.loaders(ctx).train, args.batches)
    return {"task": task_name, "model": model_name, "profile": profile,
            **compare(task, model, ctx, batches, cfg.seed, engine_options(cfg, task), device, args)}


class NullTask:
    """A task whose step costs next to nothing (a 1-in, 1-out linear layer on a batch of 4): the
    engine's fixed cost per step shows bare, and predicts the ratio of any model from its step
    time (ratio ~ step / (step + extra))."""

    mixed_precision = channels_last = False

    def optimizers(self, model, ctx):
        import torch

        return {"model": torch.optim.SGD(model.parameters(), lr=1e-3)}

    def training_step(self, model, batch, ctx, device, optimizers):
        from zooflow.training.engine import Step

        (inputs,) = batch
        return Step(model(inputs.to(device)).square().mean(), {}, len(inputs))


def measure_null(args) -> dict:
    """The engine's fixed cost per step, on ``NullTask`` over 50 times as many batches as a model."""
    import torch

    from zooflow.training.device import pick_device
    from zooflow.training.engine import Options

    device = pick_device()
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1).to(device)
    batches = [(torch.randn(4, 1),) for _ in range(args.batches * 50)]
    return {"task": "(null step)", "model": "linear 1x1", "profile": "-",
            **compare(NullTask(), model, None, batches, 0, Options(epochs=1), device, args)}


COLUMNS = [Column("task", "task"), Column("model", "model"), Column("profile", "profile"),
           Column("batch_size", "batch"), Column("batches", "batches"),
           Column("engine_sps", "engine samples/s", "{:.1f}"), Column("bare_sps", "bare samples/s", "{:.1f}"),
           Column("ratio", "engine/bare", "{:.3f}"), Column("spread", "ratio min-max"),
           Column("step_ms", "bare step ms", "{:.2f}"), Column("extra_us_per_step", "engine extra us/step", "{:.0f}"),
           Column("checkpoint_s", "checkpoint write s", "{:.3f}"), Column("checkpoint_mb", "checkpoint MB", "{:.1f}"),
           Column("setup_s", "engine setup s", "{:.3f}"), Column("verdict", ">= 0.98")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured engine/bare pairs per model (default 5)")
    parser.add_argument("--batches", type=int, default=10, help="batches taken from the loader (default 10)")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="repeat the batches until a bare pass lasts this long (default 1.0; 0: never)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded warm-up rounds (default 1)")
    parser.add_argument("--profile", choices=["all", "smoke", "demo"], default="all",
                        help="smoke models, the chapter 1/7 demo models, or both (default)")
    parser.add_argument("--no-progress", action="store_true", help="engine without its progress bar")
    parser.add_argument("--no-null", action="store_true", help="skip the null-step row (the engine's fixed cost)")
    harness.add_common_arguments(parser, "batch_size=8")
    args = parser.parse_args(argv)
    overrides = harness.start(args)
    candidates = runs(args.profile)
    wanted = set(harness.selected([(t, m) for t, m, _ in candidates], args.models))
    chosen = [(t, m, p) for t, m, p in candidates if (t, m) in wanted]
    rows = []
    jobs = [] if args.no_null else [("(null step)", None, None)]
    for task_name, model_name, profile in jobs + chosen:
        print(f"{task_name}:{model_name or ''} [{profile or '-'}] ...", flush=True)
        row = measure_null(args) if model_name is None else measure(task_name, model_name, profile, args, overrides)
        row["spread"] = f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f}"
        row["verdict"] = "(probe)" if model_name is None else "ok" if row["ratio"] >= GOAL else "BELOW"
        rows.append(row)
        print(f"  engine {row['engine_sps']:.1f}/s, bare {row['bare_sps']:.1f}/s, ratio {row['ratio']:.3f}", flush=True)
    print()
    print(harness.table(rows, COLUMNS))
    path = harness.write_json("engine_overhead", {"machine": harness.machine(), "args": vars(args), "goal": GOAL,
                                                  "rows": rows})
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
