"""Weights and checkpoints load without unpickling arbitrary objects."""

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import files_under
from zooflow.training import checkpoint
from zooflow.training.device import restore_rng_state, rng_state


def _draws() -> tuple:
    """A few numbers from every generator a training run uses (gauss exercises Python's cache)."""
    return ([random.random() for _ in range(3)], random.gauss(0, 1), np.random.rand(3).tolist(),
            np.random.standard_normal(), torch.rand(3).tolist())


def test_a_checkpoint_loads_with_weights_only_and_restores_every_random_sequence(tmp_path):
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    random.gauss(0, 1), np.random.standard_normal()  # leave a cached gaussian in both
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 3)).sum().backward()
    optimizer.step()
    history = [{"epoch": 1, "val_auroc": np.float64(0.75)}]  # scikit-learn metrics are numpy floats
    checkpoint.save(tmp_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1,
                               "rng": rng_state(), "history": history, "owner": "run-abc"})
    expected = _draws()
    _draws()  # move every generator on, as the rest of an interrupted run would

    saved = torch.load(tmp_path / checkpoint.LAST, map_location="cpu", weights_only=True)
    restore_rng_state(checkpoint.load(tmp_path)["rng"])
    assert _draws() == expected
    assert saved["owner"] == "run-abc" and saved["history"] == [{"epoch": 1, "val_auroc": 0.75}]
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    restored.load_state_dict(saved["optimizer"])


def test_a_checkpoint_with_pickled_objects_is_refused_and_named(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"epoch": 1, "payload": Evil()}, tmp_path / checkpoint.LAST)
    with pytest.raises(checkpoint.CheckpointUnreadable, match=str(tmp_path / checkpoint.LAST)):
        checkpoint.load(tmp_path)


def test_saving_a_state_the_safe_loader_refuses_fails_and_keeps_the_last_checkpoint(tmp_path):
    checkpoint.save(tmp_path, {"epoch": 1})
    with pytest.raises(TypeError, match="weights_only"):
        checkpoint.save(tmp_path, {"epoch": 2, "odd": object()})
    assert checkpoint.load(tmp_path) == {"epoch": 1}
    assert not (tmp_path / "last.partial").exists()


def test_no_weights_load_in_the_package_uses_the_unrestricted_unpickler():
    """Every torch.load in src/ passes weights_only=True (the default could change back)."""
    import re

    import zooflow

    calls = []
    for source in Path(zooflow.__file__).parent.rglob("*.py"):
        for match in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", source.read_text()):
            calls.append((source.name, match.group()))
    assert calls, "the pattern no longer finds torch.load calls"
    unsafe = [call for call in calls if "weights_only=True" not in call[1]]
    assert not unsafe, unsafe


@pytest.fixture
def logged_generator(tmp_path, monkeypatch):
    """A small generator logged through ``registry.pyfunc.log_model`` to a throwaway store:
    its model URI and the torch model and context it was logged from."""
    import mlflow

    from zooflow.config import resolve
    from zooflow.registry import pyfunc
    from zooflow.tasks.base import RunContext
    from zooflow.tasks.generation import TASK

    from zooflow.registry import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    tracking.connect()  # MLflow's process-wide URI wins over the variable: an earlier test may have set it
    ctx = RunContext(cfg=resolve("generation", "dcgan", "smoke"), info={}, data_root=tmp_path)
    torch.manual_seed(0)
    model = TASK.build_model(ctx).eval()
    weights = pyfunc.save_weights(model, tmp_path / "weights.safetensors")
    context_file = pyfunc.save_context(ctx, tmp_path / "run_context.json")
    # An experiment of its own: the default one of a SQLite store keeps artifacts in ./mlruns.
    experiment = mlflow.create_experiment("safe-loading", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    uri = pyfunc.log_model(weights, context_file, tmp_path, run.info.run_id)
    return uri, model, ctx, TASK


def test_the_logged_pyfunc_is_code_and_loads_without_unpickling(logged_generator, monkeypatch):
    import cloudpickle
    import mlflow

    uri, model, ctx, task = logged_generator
    folder = mlflow.artifacts.download_artifacts(uri)
    files = files_under(folder)
    assert not [name for name in files if name.endswith((".pkl", ".pickle"))], files
    assert {"artifacts/weights.safetensors", "artifacts/run_context.json", "served_model.py"} <= files
    assert "model_code_path" in (Path(folder) / "MLmodel").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("loading a registered model unpickled something")

    for module, name in ((pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # MLflow's own switch as well
    served = mlflow.pyfunc.load_model(uri)
    example = task.input_example(ctx)
    answer, expected = served.predict(example), task.predict(model, ctx, example)
    assert list(answer["image"]) == list(expected["image"])  # same PNG bytes as the model it came from


def test_load_torch_rebuilds_a_registered_version_from_its_weights(logged_generator):
    import mlflow

    from zooflow.registry import versions

    uri, model, ctx, _ = logged_generator
    mv = mlflow.register_model(uri, "generation-dcgan")
    rebuilt, rebuilt_ctx = versions.load_torch(versions.get("generation-dcgan", mv.version))
    assert rebuilt_ctx.cfg == ctx.cfg
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()):
        assert torch.equal(a, b)
