"""The task contract, enforced: every model of every task file goes through each method the
flow, the engine and the served model call, on real demo data, and hands back the types and
columns they rely on. A new task that misses a method, or returns the wrong shape, fails here
rather than in a user's run."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from zooflow import config
from zooflow.data.demo import BUILDERS
from zooflow.evaluation import baselines
from zooflow.tasks import TASKS, get_task
from zooflow.tasks.base import RunContext, Task
from zooflow.training.engine import Loaders, Options, Step
from zooflow.validation.runner import validate

RUNS = config.all_runs("smoke")
CONTRACT = sorted(name for name, _ in inspect.getmembers(Task, inspect.isfunction) if not name.startswith("_"))
ATTRIBUTES = ("name", "primary_metric", "goal", "baseline_description", "mixed_precision", "channels_last")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Every task's demo data, in the real on-disk formats."""
    root = tmp_path_factory.mktemp("contract") / "data"
    for folder, build in BUILDERS.items():
        build(root / folder)
    return root


def test_every_task_file_names_a_registered_task_and_every_task_is_used():
    modules = {config.resolve(task, model, "smoke").module for task, model in RUNS}
    assert modules == set(TASKS), "every task module has a task file with a smoke profile, and no file names a missing one"


@pytest.mark.parametrize("module", sorted(TASKS))
def test_a_task_has_every_method_and_attribute_of_the_contract(module):
    task = get_task(module)
    missing = [name for name in CONTRACT if not callable(getattr(task, name, None))]
    missing += [name for name in ATTRIBUTES if not hasattr(task, name)]
    assert not missing, f"task {module!r} lacks {missing}"
    assert task.goal in ("min", "max")
    from zooflow.registry import serving

    assert serving.expected_for(module).columns and "{url}" not in serving.curl_line(module, "http://h/invocations")
    described = task.baseline_description
    assert isinstance(described, str) or (isinstance(described, dict) and all(isinstance(v, str) for v in described.values()))


@pytest.mark.parametrize("task_name,model_name", RUNS, ids=[f"{t}-{m}" for t, m in RUNS])
def test_a_model_goes_through_every_step_of_the_contract(task_name, model_name, data_root, tmp_path):
    cfg = config.resolve(task_name, model_name, "smoke")
    task = get_task(cfg.module)
    device = torch.device("cpu")

    # data: JSON-able facts, a manifest naming its rows by path, expectations it meets
    info = task.data_info(cfg, data_root)
    assert json.loads(json.dumps(info)) == info
    ctx = RunContext(cfg=cfg, info=info, data_root=data_root)
    manifest = task.manifest(ctx)
    assert isinstance(manifest, pd.DataFrame) and len(manifest) > 0 and "path" in manifest.columns
    report = validate(manifest, task.expectations(ctx), suite_name=f"{cfg.task}-contract")
    assert report.success, report.failures
    assert task.not_comparable(info, info) is None
    assert all(isinstance(label, str) for label in task.metric_labels(info))

    # training: loaders, optimisers, one step the engine can use, one validation step
    torch.manual_seed(0)
    model = task.build_model(ctx)
    assert isinstance(model, torch.nn.Module)
    loaders = task.loaders(ctx)
    assert isinstance(loaders, Loaders) and loaders.val is not None
    optimizers = task.optimizers(model, ctx)
    assert optimizers and all(isinstance(o, torch.optim.Optimizer) for o in optimizers.values())
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
    step = task.training_step(model, next(iter(loaders.train)), ctx, device, optimizers)
    assert isinstance(step, Step) and step.samples >= 1
    if step.loss is not None:  # the engine's update: the step only computes the loss
        assert step.loss.dim() == 0 and step.loss.requires_grad and math.isfinite(step.loss.item())
        step.loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
    assert all(math.isfinite(v) for v in step.sums.values())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "one step changed no weight"
    model.eval()
    with torch.no_grad():
        checked = task.validation_step(model, next(iter(loaders.val)), ctx, device)
    assert isinstance(checked, Step)
    if cfg.select_metric:
        assert cfg.select_metric in checked.sums, f"select_metric {cfg.select_metric!r} is not a validation figure"
    options = Options.from_config(cfg, task)
    assert isinstance(options.mixed_precision, bool) and isinstance(options.channels_last, bool)
    task.after_training(model, ctx)

    # evaluation: scores with the primary metric, baselines on the same samples, card figures
    predictions = task.predict_split(model, ctx)
    scores = task.score(predictions, ctx)
    assert task.primary_metric in scores and all(isinstance(v, float) for v in scores.values())
    baseline = task.baseline(ctx)
    if baselines.is_named(baseline):  # {name: metrics}: each name is described for the card
        assert set(baseline) == set(task.baseline_description)
    flat = baselines.flat(baseline)
    assert flat and all(isinstance(v, float) for v in flat.values())
    figures = task.examples(model, ctx, predictions, tmp_path / "card")
    assert figures and all(Path(f).is_file() and Path(f).parent == tmp_path / "card" for f in figures)

    # serving: the logged input example is answered, and the packages it needs are installed
    example = task.input_example(ctx)
    assert isinstance(example, pd.DataFrame) and len(example) >= 2
    answer = task.predict(model, ctx, example)
    assert isinstance(answer, pd.DataFrame) and len(answer.columns) >= 1
    # One row per input, or per thing found in an input (boxes, people), where a smoke network
    # may find nothing: the answer is then empty but still says which input a row would be for.
    assert len(answer) >= 1 or "image" in answer.columns
    from importlib import metadata

    for package in task.serving_packages(cfg):
        assert metadata.version(package), package
