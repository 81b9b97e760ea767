"""Training images/s and peak GPU memory of the book's vision models: a book-style fp32 loop
against the engine (bf16 autocast + channels_last where the task opts in; ``--compile`` adds the
engine on ``torch.compile``d networks).

    python benchmarks/gpu_throughput.py                          # book profiles, on the GPU
    python benchmarks/gpu_throughput.py --profile smoke --steps 1 --rounds 1   # a CPU check that it runs

Per model (classification: vgg16-transfer, vgg16-finetune, mobilenetv2-transfer; generation:
dcgan, sagan; anomaly: anogan, efficientgan) at the profile's size, on batches of the task's
own training loader (full batches only, materialised once and shared by every variant):

- book: the task's ``training_step`` in fp32 with the default memory layout (the task's
  channels_last switched off), then zero_grad / backward / step, as the book's loops do;
- engine: ``engine.train`` over the same batches, one epoch, timed from its first batch to the
  end of its last step (its checkpoint write is timed on its own);
- engine+compile (``--compile``): the same, with each top-level network compiled.

Weights are random (``pretrained=False``: the book's VGG weights are not offline, and speed does
not depend on them). Each variant starts from the same weights and seed; a discarded warm-up
round (which also pays for compilation) comes first, then ``--rounds`` rounds, in turn. Peak
memory is ``torch.cuda.max_memory_allocated`` over a pass's steps (model, optimiser state and
activations). Prints one table; writes ``gpu_throughput.json`` (``$OUT`` when set, else
benchmarks/results/).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import harness
from harness import Column

VISION = [("classification", "vgg16-transfer"), ("classification", "vgg16-finetune"),
          ("classification", "mobilenetv2-transfer"), ("generation", "dcgan"), ("generation", "sagan"),
          ("anomaly", "anogan"), ("anomaly", "efficientgan")]


def as_the_book_ran_it(task):
    """The task with channels_last off (its steps then leave the inputs' layout alone): a copy,
    so the shared task object is untouched."""
    book = copy.copy(task)
    book.channels_last = False
    return book


def compiled_view(model):
    """A shallow copy of ``model`` whose top-level networks are ``torch.compile``d. It shares
    the parameters (no second copy of the weights), so the optimisers of ``model`` train it and
    a reset of ``model`` resets it."""
    import torch

    view = copy.copy(model)
    view._modules = {name: torch.compile(child) for name, child in model._modules.items()}
    return view


class Peak:
    """Peak GPU memory over a stretch of work (None on the CPU)."""

    def __init__(self, device):
        self.device, self.gib = device, None

    def start(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> None:
        import torch

        if self.device.type == "cuda":
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2**30


def book_pass(task, model, ctx, batches, device) -> dict:
    """The book-style loop: fp32, default memory layout."""
    import torch

    model.to(memory_format=torch.contiguous_format)
    peak = Peak(device)
    peak.start()
    seconds = harness.bare_pass(as_the_book_ran_it(task), model, ctx, batches, task.optimizers(model, ctx), device)
    peak.stop()
    return {"steps_s": seconds, "peak_gib": peak.gib}


def engine_pass(task, model, trained, ctx, batches, options, device, optimizers) -> dict:
    """One engine epoch over ``batches`` on ``trained`` (``model`` or its compiled view)."""
    import tempfile
    from pathlib import Path

    from zooflow.training import engine

    timed, peak = harness.TimedBatches(batches, device), Peak(device)
    timed.after_steps = peak.stop  # before the checkpoint, whose copies are not training memory
    peak.start()
    with tempfile.TemporaryDirectory(prefix="zooflow-gpu-") as folder, harness.timed_checkpoints() as writes:
        engine.train(trained, task, ctx, engine.Loaders(train=timed, val=None), optimizers, options, Path(folder),
                     show_progress=False)
    return {"steps_s": timed.seconds, "peak_gib": peak.gib, "checkpoint_s": writes[0][0],
            "checkpoint_mb": writes[0][1] / 1e6}


def measure(task_name: str, model_name: str, args, overrides: dict) -> dict:
    """The variants of one model, alternated over the rounds; medians."""
    import dataclasses

    from zooflow.training.device import pick_device, seed_everything
    from zooflow.training.engine import Options

    task, ctx = harness.context(task_name, model_name, args.profile, overrides)
    cfg, device = ctx.cfg, pick_device()
    seed_everything(cfg.seed)
    model = task.build_model(ctx, pretrained=False).to(device)
    start = harness.snapshot(model)
    batches = harness.materialise(task.loaders(ctx).train, args.steps, size=cfg.batch_size)
    samples = sum(harness.batch_samples(b) for b in batches)
    options = dataclasses.replace(Options.from_config(cfg, task), epochs=1, max_batches=None, select_metric=None)
    compiled = compiled_view(model) if args.compile else None

    def run(variant: str) -> dict:
        harness.reset(model, start, cfg.seed)
        if variant == "book":
            return book_pass(task, model, ctx, batches, device)
        trained = compiled if variant == "compile" else model
        return engine_pass(task, model, trained, ctx, batches, options, device, task.optimizers(model, ctx))

    variants = ["book", "engine"] + (["compile"] if args.compile else [])
    results: dict[str, list[dict]] = {v: [] for v in variants}
    started = time.perf_counter()
    for round_index in range(args.warmup + args.rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]  # neither always goes first
        for variant in order:
            result = run(variant)
            if round_index >= args.warmup:
                results[variant].append(result)
    row = {"task": task_name, "model": model_name, "profile": args.profile, "device": device.type,
           "batch_size": harness.batch_samples(batches[0]), "steps": len(batches),
           "image_shape": "x".join(str(n) for n in harness.first_tensor(batches[0]).shape[1:]),
           "engine_mode": ("bf16" if options.mixed_precision else "fp32")
           + (" + channels_last" if options.channels_last else "") if device.type == "cuda" else "fp32 (CPU)",
           "seconds": time.perf_counter() - started}
    for variant, runs in results.items():
        row[f"{variant}_ips"] = harness.median([samples / r["steps_s"] for r in runs])
        peaks = [r["peak_gib"] for r in runs if r["peak_gib"] is not None]
        row[f"{variant}_peak_gib"] = max(peaks) if peaks else None
        if variant != "book":
            row[f"{variant}_checkpoint_s"] = harness.median([r["checkpoint_s"] for r in runs])
            row["checkpoint_mb"] = runs[0]["checkpoint_mb"]
            row[f"{variant}_speedup"] = row[f"{variant}_ips"] / row["book_ips"]
    row["rounds"] = results
    return row


def columns(with_compile: bool) -> list[Column]:
    cols = [Column("task", "task"), Column("model", "model"), Column("batch_size", "batch"),
            Column("image_shape", "image"), Column("engine_mode", "engine runs"),
            Column("book_ips", "book fp32 img/s", "{:.1f}"), Column("engine_ips", "engine img/s", "{:.1f}"),
            Column("engine_speedup", "engine/book", "{:.2f}")]
    if with_compile:
        cols += [Column("compile_ips", "compiled img/s", "{:.1f}"), Column("compile_speedup", "compiled/book", "{:.2f}")]
    cols += [Column("book_peak_gib", "book peak GiB", "{:.2f}"), Column("engine_peak_gib", "engine peak GiB", "{:.2f}")]
    if with_compile:
        cols.append(Column("compile_peak_gib", "compiled peak GiB", "{:.2f}"))
    return cols + [Column("engine_checkpoint_s", "checkpoint s", "{:.2f}"), Column("checkpoint_mb", "checkpoint MB", "{:.1f}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="book", choices=["smoke", "demo", "book"])
    parser.add_argument("--steps", type=int, default=20, help="training steps per pass (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded warm-up rounds (default 1)")
    parser.add_argument("--compile", action="store_true", help="add the engine on torch.compile'd networks")
    parser.add_argument("--json", default="gpu_throughput", help="name of the JSON file (default gpu_throughput)")
    harness.add_common_arguments(parser, "batch_size=64")
    args = parser.parse_args(argv)
    overrides = harness.start(args)
    rows, failed = [], []
    for task_name, model_name in harness.selected(VISION, args.models):
        print(f"{task_name}:{model_name} [{args.profile}] ...", flush=True)
        try:
            row = measure(task_name, model_name, args, overrides)
        except Exception as error:  # e.g. no data for this task on a bare GPU machine: say so, go on
            print(f"  skipped: {type(error).__name__}: {error}", flush=True)
            failed.append({"task": task_name, "model": model_name, "error": f"{type(error).__name__}: {error}"})
            continue
        rows.append(row)
        print(f"  book {row['book_ips']:.1f} img/s, engine {row['engine_ips']:.1f} img/s "
              f"({row['seconds']:.0f} s)", flush=True)
    print()
    print(harness.table(rows, columns(args.compile)))
    path = harness.write_json(args.json, {"machine": harness.machine(), "args": vars(args), "rows": rows,
                                                 "skipped": failed})
    print(f"\nwritten: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
