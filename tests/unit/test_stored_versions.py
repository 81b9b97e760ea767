"""Versions registered before ``params`` existed (flat configs, made by commit edc07f8; see
``tests/fixtures/registered-before-params/README.md``) still load with today's code: their
task-specific keys come out typed in ``params``, equal to the old flat values, and the rebuilt
model answers its logged input example as the old code did."""

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from PIL import Image

from zooflow.config import RunConfig
from zooflow.registry.pyfunc import load_context, rebuild
from zooflow.tasks import get_task
from zooflow.tasks.params import (FLAT_KEYS_BEFORE_PARAMS, AnomalyParams, ClassificationParams, GenerationParams,
                                  SentimentParams)

STORED = Path(__file__).parents[1] / "fixtures" / "registered-before-params"
KINDS = {"classification-vgg16-transfer": ClassificationParams, "generation-dcgan": GenerationParams,
         "sentiment-ja-transformer": SentimentParams, "anomaly-efficientgan": AnomalyParams}
WITH_WEIGHTS = sorted(name for name in KINDS if (STORED / name / "artifacts" / "weights.safetensors").exists())


def _flat(name: str) -> dict:
    return json.loads((STORED / name / "artifacts" / "run_context.json").read_text())["config"]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_flat_stored_config_loads_with_its_task_keys_typed_in_params(name):
    flat = _flat(name)
    assert "params" not in flat and "tokenizer" in flat  # really the old format: every key at the top
    ctx = load_context(STORED / name / "artifacts" / "run_context.json")
    params = ctx.cfg.params
    assert type(params) is KINDS[name]
    # a parameter added since (the Transformer's dropout) was never stored: it takes its default
    assert params.model_dump(mode="json") == {key: flat.get(key, field.default)
                                              for key, field in type(params).model_fields.items()}
    # every old flat key left the top level: the other tasks' keys were unused defaults
    assert not set(FLAT_KEYS_BEFORE_PARAMS) & set(ctx.cfg.model_dump())
    assert ctx.cfg.registered_name == name


def test_the_typed_params_read_as_the_old_flat_values():
    sentiment = load_context(STORED / "sentiment-ja-transformer" / "artifacts" / "run_context.json").cfg
    params = sentiment.params
    assert (params.tokenizer, params.max_length, params.embedding_dim) == ("janome", 32, 16)
    gan = load_context(STORED / "generation-dcgan" / "artifacts" / "run_context.json").cfg
    assert gan.params.normal_labels == ("7", "8") and gan.params.input_size == 32
    assert not hasattr(gan.params, "tokenizer")  # a GAN no longer carries a tokenizer


def test_an_old_config_without_module_or_params_still_loads():
    flat = _flat("classification-vgg16-transfer")
    flat.pop("module")  # versions registered before task modules could be shared
    cfg = RunConfig.model_validate(flat)
    assert cfg.module == "classification" and cfg.params.resize == flat["resize"] == 32


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    """PNG bytes as pixel arrays; every other column as it is."""
    def pixels(value):
        data = value if isinstance(value, bytes) else base64.b64decode(value)
        return np.asarray(Image.open(io.BytesIO(data)), dtype=np.int16)
    return table.apply(lambda column: column.map(pixels) if column.name == "image" else column)


@pytest.mark.parametrize("name", WITH_WEIGHTS)
def test_an_old_version_rebuilds_and_answers_its_input_example_as_before(name):
    folder = STORED / name
    model, ctx = rebuild(folder / "artifacts" / "weights.safetensors", folder / "artifacts" / "run_context.json")
    example = Model.load(str(folder)).load_input_example(str(folder))
    answer = _comparable(get_task(ctx.cfg.module).predict(model, ctx, example))
    before = _comparable(pd.read_json(io.StringIO((folder / "predictions.json").read_text()), orient="split"))
    assert list(answer.columns) == list(before.columns) and len(answer) == len(before) > 0
    for column in answer.columns:
        for new, old in zip(answer[column], before[column]):
            if isinstance(new, np.ndarray):
                assert np.abs(new - old).max() <= 1  # a pixel's rounding at most (another CPU's kernels)
            elif isinstance(new, float):
                assert new == pytest.approx(old, abs=1e-5)
            else:
                assert new == old
