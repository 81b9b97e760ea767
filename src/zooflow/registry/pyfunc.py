"""One MLflow pyfunc for every task: weights (safetensors) + the run's resolved config and
data facts as artifacts; on load it rebuilds the model through the task contract, so the
served model takes raw input (image bytes/arrays, text, video) and answers like the task."""

from __future__ import annotations

import json
import warnings
from importlib import metadata
from pathlib import Path

import mlflow
import torch
from safetensors.torch import load_file, save_file

import zooflow
from zooflow.config import RunConfig
from zooflow.registry import serving
from zooflow.tasks import get_task
from zooflow.tasks.base import RunContext

# What every served model needs to rebuild and run (no orchestration tools); each task adds its
# own (``Task.serving_packages``: a tokenizer, transformers, scikit-learn, PyAV, ...).
SERVING_PACKAGES = ("torch", "torchvision", "torchmetrics", "mlflow", "numpy", "pandas", "pillow",
                    "safetensors", "pydantic", "pyyaml", "matplotlib", "rich")


# The file MLflow logs as the model's code ("models from code"): it sets a TorchTaskModel.
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")


def serving_requirements(ctx: RunContext) -> list[str]:
    """The packages the model of ``ctx`` needs to serve: the common ones and its task's, pinned to
    what is installed here; given explicitly so logging never resolves over the network."""
    extra = get_task(ctx.cfg.module).serving_packages(ctx.cfg)
    return [f"{name}=={metadata.version(name)}" for name in dict.fromkeys((*SERVING_PACKAGES, *extra))]


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    """The model's state_dict as safetensors (CPU, contiguous: safetensors demands both)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def save_context(ctx: RunContext, path: Path) -> Path:
    path.write_text(json.dumps({"config": ctx.cfg.model_dump(mode="json"), "info": ctx.info}, indent=2))
    return path


def load_context(context_file: Path, data_root: Path = Path(".")) -> RunContext:
    """The resolved config and data facts a model was trained with (``run_context.json``)."""
    saved = json.loads(Path(context_file).read_text())
    return RunContext(cfg=RunConfig.model_validate(saved["config"]), info=saved["info"], data_root=Path(data_root))


def rebuild(weights: Path, context_file: Path) -> tuple[torch.nn.Module, RunContext]:
    """The torch model of a logged version, on CPU, in eval mode, and its context."""
    ctx = load_context(context_file)
    model = get_task(ctx.cfg.module).build_model(ctx, pretrained=False)
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), ctx


class TorchTaskModel(mlflow.pyfunc.PythonModel):
    """Serves any zooflow task: ``predict`` takes the task's raw input and returns its answer."""

    # A task's raw input is bytes, arrays or text depending on the task, so there is no one
    # type hint for ``predict``; the logged signature describes the input instead. This is the
    # switch MLflow's own ChatModel uses to opt out of type-hint validation (and its warning).
    _skip_type_hint_validation = True

    def load_context(self, context):
        self.model, self.ctx = rebuild(Path(context.artifacts["weights"]), Path(context.artifacts["run_context"]))
        self.task = get_task(self.ctx.cfg.module)
        self.expected = serving.expected_for(self.ctx.cfg.module)

    def predict(self, context, model_input, params=None):
        """The task's answer for any body shape the scoring server parses (see ``serving``).
        Input the task refuses (not base64, not an image, a bad count) is the client's error:
        it becomes an HTTP 400 naming the expected shape, not a 500 with a traceback."""
        table = serving.as_table(model_input, self.expected)
        try:
            return self.task.predict(self.model, self.ctx, table)
        except ValueError as error:  # zooflow's InputRejected is a ValueError too
            raise serving.bad_request(self.expected, str(error)) from None


def log_model(weights: Path, context_file: Path, data_root: Path, run_id: str) -> str:
    """Log the saved model (weights + run context) as a pyfunc on ``run_id``; its model URI.
    The model is rebuilt from exactly those files, as a server will, to infer the signature.
    The pyfunc is logged from code (``served_model.py``), so its folder holds no pickle."""
    model, _ = rebuild(weights, context_file)
    ctx = load_context(context_file, data_root)
    task = get_task(ctx.cfg.module)
    example = task.input_example(ctx)
    output = task.predict(model, ctx, example)
    with warnings.catch_warnings():
        # A generator's input is integer seeds and counts, which are never missing: MLflow's
        # hint about integer columns and missing values does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = serving.lenient_signature(mlflow.models.infer_signature(example, output))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            # A code file, not an instance: loading then runs that file and unpickles nothing.
            name="model", python_model=str(SERVED_MODEL_CODE),
            artifacts={"weights": str(weights), "run_context": str(context_file)},
            code_paths=[str(Path(zooflow.__file__).parent)],  # the served model carries its own code
            signature=signature, input_example=example, pip_requirements=serving_requirements(ctx))
    return info.model_uri
