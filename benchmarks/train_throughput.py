"""Training throughput (images/s) of one task model's profile on whatever device is present.

    python benchmarks/train_throughput.py --model vgg16-finetune --profile book --steps 20

Synthetic batches at the profile's input size; measures the same step the training loop runs
(bf16 autocast and channels_last on CUDA). Not a test: numbers go in the issue notes.
"""

from __future__ import annotations

import argparse
import time

import torch

from zooflow.config import resolve
from zooflow.tasks import get_task
from zooflow.tasks.base import RunContext
from zooflow.training.device import pick_device


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="classification")
    parser.add_argument("--model", default="vgg16-finetune")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    cfg = resolve(args.task, args.model, args.profile)
    task = get_task(args.task)
    ctx = RunContext(cfg=cfg, info={"classes": ["a", "b"]}, data_root=None)
    model = task.build_model(ctx, pretrained=False)
    optimizer = task.optimizer(model, cfg)
    device = pick_device()
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    inputs = torch.randn(cfg.batch_size, 3, cfg.params.input_size, cfg.params.input_size, device=device)
    targets = torch.randint(0, 2, (cfg.batch_size,), device=device)
    criterion = torch.nn.CrossEntropyLoss()
    for step in range(args.steps + 2):
        if step == 2:  # the first steps warm up kernels and allocators
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = criterion(model(inputs).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(f"{args.model}/{args.profile} on {device}: {args.steps * cfg.batch_size / seconds:.1f} images/s "
          f"(batch {cfg.batch_size}, {cfg.params.input_size}px)")


if __name__ == "__main__":
    main()
