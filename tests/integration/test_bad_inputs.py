"""The bad-input corpus beyond imports (those are in test_bad_imports.py): mistyped commands,
broken task configs, stores that cannot be reached or written, data edited by hand, missing
weights - each through the real ``zooflow`` entry point, in-process.

Every case is refused: the exit code, one message naming the file/row/key/option and what is
wrong, no traceback, and data.dvc, the registry and everything outside the project exactly as
before. Cases that need the pipeline run the real Prefect flow up to the step that refuses.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cli import assert_one_clear_message, run_cli
from tests.conftest import make_project, using_project
from tests.servers import free_port

RUN = ("run", "classification", "--model", "vgg16-finetune", "--profile", "smoke")
MOBILE = ("run", "classification", "--model", "mobilenetv2-transfer", "--profile", "smoke")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    names: tuple[str, ...]
    setup: Callable[[Path, pytest.MonkeyPatch], Callable[[], None] | None] | None = None


def _config(root: Path, edit: Callable[[dict], object] | None = None, text: str | None = None):
    """A setup that rewrites the project's classification config (restored afterwards)."""
    def setup(root: Path, monkeypatch) -> Callable[[], None]:
        path = root / "configs" / "classification.yaml"
        saved = path.read_bytes()
        if text is not None:
            path.write_text(text)
        else:
            raw = yaml.safe_load(saved)
            edit(raw)
            path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return lambda: path.write_bytes(saved)
    return setup


def _smoke(model="vgg16-finetune", **values):
    return lambda raw: raw["models"][model]["profiles"]["smoke"].update(values)


def _env(**values):
    def setup(root, monkeypatch):
        for key, value in values.items():
            monkeypatch.setenv(key, value.format(root=root, port=free_port()))
    return setup


def _unreachable_server(root, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")


def _read_only_store(root, monkeypatch):
    """The store's file and folder made immutable (``chattr +i``: read-only even for root)."""
    store = root / "mlflow"
    run_cli("models")  # the store exists before it turns read-only
    paths = [store / "mlflow.db", store]
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    return lambda: subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def _corrupt_store(root, monkeypatch):
    other = root / "elsewhere"
    other.mkdir()
    (other / "mlflow.db").write_bytes(b"this is not an SQLite database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other / 'mlflow.db'}")
    return lambda: shutil.rmtree(other)


def _edit_data_by_hand(root, monkeypatch):
    image = next((root / "data" / "classification" / "train").rglob("*.jpg"))
    saved = image.read_bytes()
    image.write_bytes(saved[:-10] + b"0123456789")
    return lambda: image.write_bytes(saved)


def _no_data_pointer(root, monkeypatch):
    pointer = root / "data.dvc"
    saved = pointer.read_bytes()
    pointer.unlink()
    return lambda: pointer.write_bytes(saved)


def _committed_bad_image(root, monkeypatch):
    """A file broken by hand and recorded with `zooflow data commit`: validation must stop it."""
    image = next((root / "data" / "classification" / "val").rglob("*.jpg"))
    saved, pointer = image.read_bytes(), (root / "data.dvc").read_bytes()
    image.write_bytes(b"not a jpeg")
    assert run_cli("data", "commit")[0] == 0

    def restore():
        image.write_bytes(saved)
        (root / "data.dvc").write_bytes(pointer)
    return restore


def _pickled_weights(root, monkeypatch):
    """A "state_dict" that is really a pickled object: weights_only loading refuses it."""
    import pickle

    path = root / "weights" / "pickled.pt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(pickle.dumps({"features.0.weight": object()}))
    return _config(root, _smoke(pretrained=str(path), model="mobilenetv2-transfer"))(root, monkeypatch)


def _tensor_weights(root, monkeypatch):
    """A file torch can read, but holding a list of numbers rather than named weights."""
    import torch

    path = root / "weights" / "notes.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save([1.0, 2.0], path)
    return _config(root, _smoke(pretrained=str(path), model="mobilenetv2-transfer"))(root, monkeypatch)


CASES = {
    # -- the command line -------------------------------------------------------------------
    "missing --model": Case(("run", "classification"), 2, ("Missing option '--model'",)),
    "unknown option": Case((*RUN, "--bogus"), 2, ("No such option: --bogus",)),
    "unknown command": Case(("frobnicate",), 2, ("No such command 'frobnicate'",)),
    "unknown task": Case(("run", "detektion", "--model", "ssd300"), 1, ("no config for task 'detektion'", "classification")),
    "unknown model": Case(("run", "classification", "--model", "vgg19"), 1, ("has no model 'vgg19'", "vgg16-finetune")),
    "unknown profile": Case((*RUN[:4], "--profile", "huge"), 1, ("has no profile 'huge'", "smoke")),
    "bad card spec": Case(("card", "classification-vgg16-finetune"), 1, ("neither NAME@ALIAS nor NAME/VERSION",)),
    "unknown alias": Case(("card", "classification-vgg16-finetune@champion"), 1, ("no version with alias 'champion'",)),
    "unknown version": Case(("card", "classification-vgg16-finetune/7"), 1, ("classification-vgg16-finetune", "version 7")),
    "promote without reason": Case(("promote", "classification-vgg16-finetune", "1"), 2, ("Missing option '--reason'",)),
    "promote unknown version": Case(("promote", "classification-vgg16-finetune", "3", "--reason", "x"), 1,
                                    ("classification-vgg16-finetune", "version 3")),
    "import unknown task": Case(("data", "import", "detektion", "/nonexistent"), 1, ("no config for task 'detektion'",)),
    "import missing source": Case(("data", "import", "classification", "/nonexistent/hymenoptera"), 1,
                                  ("/nonexistent/hymenoptera",)),
    "explain a non-text model": Case(("explain", "nosuch-model@champion", "text"), 1, ("nosuch-model",)),
    # -- the task config --------------------------------------------------------------------
    "YAML syntax error": Case(RUN, 1, ("classification.yaml:3:1: not valid YAML",),
                              _config(None, text="task: classification\nmodels: {vgg16-finetune: [\n")),
    "config is a list": Case(RUN, 1, ("classification.yaml", "mapping"), _config(None, text="- a\n- b\n")),
    "config is empty": Case(RUN, 1, ("classification.yaml", "mapping"), _config(None, text="")),
    "unknown key": Case(RUN, 1, ("classification.yaml", "unknown key 'epochz'"), _config(None, _smoke(epochz=3))),
    "wrong type": Case(RUN, 1, ("classification.yaml", "epochs"), _config(None, _smoke(epochs="many"))),
    "negative epochs": Case(RUN, 1, ("classification.yaml", "epochs", "greater than or equal to 0"),
                            _config(None, _smoke(epochs=-1))),
    # epochs 0 evaluates the pretrained model as it is: refused for a model trained from scratch
    "zero epochs from scratch": Case(RUN, 1, ("classification.yaml", "epochs 0 evaluates the pretrained model",
                                              "pretrained is 'none'"), _config(None, _smoke(epochs=0))),
    "unknown optimizer": Case(RUN, 1, ("classification.yaml", "optimizer", "'sgd', 'adam' or 'adamw'"),
                              _config(None, _smoke(optimizer="lion"))),
    "policy without threshold": Case(RUN, 1, ("classification.yaml", "policy.threshold", "Field required"),
                                     _config(None, lambda raw: raw["policy"].pop("threshold"))),
    "negative margin": Case(RUN, 1, ("classification.yaml", "policy.margin"),
                            _config(None, lambda raw: raw["policy"].update(margin=-1))),
    "config dir missing": Case(RUN, 1, ("no config for task 'classification'", "/nonexistent/configs"),
                               _env(ZOOFLOW_CONFIG_DIR="/nonexistent/configs")),
    # -- the stores -------------------------------------------------------------------------
    "tracking server unreachable (run)": Case(RUN, 1, ("MLflow tracking server http://127.0.0.1:", "does not answer"),
                                              _unreachable_server),
    "tracking server unreachable (models)": Case(("models",), 1, ("MLflow tracking server", "does not answer"),
                                                 _unreachable_server),
    "read-only store": Case(RUN, 1, ("mlflow.db", "read-only"), _read_only_store),
    "corrupt store file": Case(RUN, 1, ("elsewhere/mlflow.db", "cannot be opened"), _corrupt_store),
    # -- the data and the weights (the pipeline runs up to the step that refuses) -------------
    "data edited by hand": Case(RUN, 1, ("differs from data.dvc", "zooflow data commit"), _edit_data_by_hand),
    "no data.dvc": Case(("data", "status"), 1, ("data.dvc is missing",), _no_data_pointer),
    "committed broken image": Case(RUN, 1, ("ValidationFailed", "classification/val/", "decodes=False"),
                                   _committed_bad_image),
    "pretrained file missing": Case(MOBILE, 1, ("/nonexistent/mobilenet.pth", "no such file"),
                                    _config(None, _smoke(pretrained="/nonexistent/mobilenet.pth", model="mobilenetv2-transfer"))),
    "pretrained file is a pickle": Case(MOBILE, 1, ("pickled.pt", "weights_only=True"), _pickled_weights),
    "pretrained file is not weights": Case(MOBILE, 1, ("notes.pt", "not a state_dict"), _tensor_weights),
    "pretrained on a shrunk VGG": Case(RUN, 1, ("pretrained: imagenet needs the full VGG-16", "width 0.0625"),
                                       _config(None, _smoke(pretrained="imagenet"))),
}


@pytest.fixture(scope="module")
def corpus_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("bad-inputs") / "project")
    with using_project(root):
        yield root


def _tree(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """path -> content hash of every file under ``folder`` (except under ``skip``)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not (skip and p.is_relative_to(skip))}


def _registry(root: Path) -> list[tuple]:
    """Registered models, versions and aliases of the project's own store."""
    from mlflow.tracking import MlflowClient

    database = root / "mlflow" / "mlflow.db"
    if not database.exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{database}", registry_uri=f"sqlite:///{database}")
    return sorted((m.name, tuple(sorted(m.aliases.items())),
                   tuple(sorted(str(v.version) for v in client.search_model_versions(f"name = '{m.name}'"))))
                  for m in client.search_registered_models())


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_by_name(name, corpus_project, prefect_server, monkeypatch):
    case, root = CASES[name], corpus_project
    outside = root.parent
    restore = case.setup(root, monkeypatch) if case.setup else None
    try:
        pointer, registry = (root / "data.dvc").read_bytes() if (root / "data.dvc").exists() else b"", _registry(root)
        around = _tree(outside, skip=root)
        code, output = run_cli(*case.args)
        assert code == case.code, output
        assert_one_clear_message(output, *case.names)
        assert ((root / "data.dvc").read_bytes() if (root / "data.dvc").exists() else b"") == pointer
        assert _registry(root) == registry
        assert _tree(outside, skip=root) == around  # nothing written outside the project
    finally:
        if restore:
            restore()
