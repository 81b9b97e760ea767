"""What a served zooflow model accepts over REST, and how a bad request is answered.

MLflow's scoring server (``mlflow models serve``) parses four JSON body shapes:
``dataframe_split``, ``dataframe_records``, ``instances`` and ``inputs``. Each reaches the
pyfunc's ``predict`` as something different - a DataFrame, a dict of arrays, a list - and base64
text is only decoded to bytes for a ``dataframe_*`` body. ``as_table`` turns all of them into
the one DataFrame a task's ``predict`` reads, and ``bad_request`` turns a wrong input into an
HTTP 400 whose message says what to send (an ``MlflowException`` without a stack trace: the
server then returns only the message, never a traceback with internal paths).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from mlflow.types.schema import ColSpec, Schema

from zooflow.errors import UserError


@dataclass(frozen=True)
class Expected:
    """The input of one task kind: its columns and a line saying what a request looks like."""

    columns: tuple[str, ...]
    shape: str
    values: tuple[type, ...] = ()  # the Python types a cell may hold (checked when given)


_IMAGE = Expected(("image",), 'a JSON body {"instances": ["<base64 image bytes>", ...]} '
                              '(or "inputs", or dataframe_split/dataframe_records with an "image" column '
                              'of base64 image bytes)')
_TEXT = Expected(("text",), 'a JSON body {"instances": ["a text", ...]} '
                            '(or "inputs", or dataframe_split/dataframe_records with a "text" column of strings)',
                 values=(str,))
_VIDEO = Expected(("video",), 'a JSON body {"instances": ["<base64 bytes of a video file>", ...]} '
                              '(or "inputs", or dataframe_split/dataframe_records with a "video" column '
                              'of base64 video bytes; any container PyAV reads: mp4, avi, mkv, webm, mov)')
_SEEDS = Expected(("seed", "count"), 'a JSON body {"instances": [{"seed": 1, "count": 4}, ...]} '
                                     '(or "inputs", or dataframe_split/dataframe_records with integer '
                                     '"seed" and "count" columns)',
                  values=(int, np.integer))

# By the task module a run config names (``cfg.module``); sentiment-ja uses ``sentiment``.
EXPECTED = {"classification": _IMAGE, "anomaly": _IMAGE, "sentiment": _TEXT, "generation": _SEEDS,
            "detection": _IMAGE, "segmentation": _IMAGE, "pose": _IMAGE, "video": _VIDEO}


def expected_for(module: str) -> Expected:
    """The input a model of task module ``module`` expects."""
    return EXPECTED[module]


def bad_request(expected: Expected, problem: str) -> MlflowException:
    """An HTTP 400 for the scoring server: what was wrong and which shape to send instead."""
    return MlflowException(f"Bad input: {problem}. Expected {expected.shape}.", error_code=BAD_REQUEST)


def lenient_signature(signature: ModelSignature) -> ModelSignature:
    """``signature`` with its input columns optional. MLflow checks a signature before
    ``predict`` runs and answers a missing column with its own message; optional columns let
    ``as_table`` answer instead, with the body shape to send. Types stay as inferred."""
    inputs = Schema([ColSpec(spec.type, spec.name, required=False) for spec in signature.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=signature.outputs, params=signature.params)


def _column_values(values) -> list:
    """A column's values as a plain list (MLflow hands ``instances`` over as numpy arrays)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def as_table(raw, expected: Expected) -> pd.DataFrame:
    """Every body shape the server parses, as a DataFrame with the expected columns.

    - a DataFrame (``dataframe_split`` / ``dataframe_records``, or in-process callers);
    - a dict of columns (``inputs: {"image": [...]}``, or ``instances`` of objects);
    - a list or array of values (``instances: [...]`` / ``inputs: [...]``): one value per row
      for a one-column task, or one object per row.
    """
    if isinstance(raw, pd.DataFrame):
        table = raw
    elif isinstance(raw, dict):
        columns = {key: _column_values(value) if isinstance(value, (list, np.ndarray)) else [value]
                   for key, value in raw.items()}
        if len({len(value) for value in columns.values()}) > 1:
            raise bad_request(expected, "the columns have different lengths")
        table = pd.DataFrame(columns)
    elif isinstance(raw, (list, tuple, np.ndarray)):
        rows = _column_values(raw)
        if rows and all(isinstance(row, dict) for row in rows):
            table = pd.DataFrame(rows)
        elif len(expected.columns) == 1 and not any(isinstance(row, (dict, list)) for row in rows):
            table = pd.DataFrame({expected.columns[0]: rows})
        else:
            raise bad_request(expected, "the rows are neither all values nor all objects")
    else:
        raise bad_request(expected, f"got a {type(raw).__name__}")
    missing = [column for column in expected.columns if column not in table.columns]
    if missing:
        raise bad_request(expected, f"no {' or '.join(map(repr, missing))} column")
    if table.empty:
        raise bad_request(expected, "no rows")
    table = table[list(expected.columns)]
    _check_values(table, expected)
    return table


def _check_values(table: pd.DataFrame, expected: Expected) -> None:
    """Refuse cells of the wrong type by name (a number where a text belongs, a text seed)."""
    if not expected.values:
        return
    for column in expected.columns:
        for row, value in enumerate(table[column]):
            if isinstance(value, bool) or not isinstance(value, expected.values):
                raise bad_request(expected, f"row {row} of '{column}' is {value!r}")


# A ready request per task module, for the URL a server listens on; the README's
# "Serving a model" section has the same lines for port 5001.
_CURL = {
    "classification": 'curl -s {url} -H "Content-Type: application/json" '
                      '-d "{{\\"instances\\": [\\"$(base64 -w0 IMAGE.jpg)\\"]}}"',
    "anomaly": 'curl -s {url} -H "Content-Type: application/json" '
               '-d "{{\\"instances\\": [\\"$(base64 -w0 DIGIT.png)\\"]}}"',
    "sentiment": 'curl -s {url} -H "Content-Type: application/json" '
                 '-d \'{{"instances": ["what a lovely day", "this was a waste of time"]}}\'',
    "generation": 'curl -s {url} -H "Content-Type: application/json" '
                  '-d \'{{"instances": [{{"seed": 1, "count": 4}}]}}\'',
    "detection": 'curl -s {url} -H "Content-Type: application/json" '
                 '-d "{{\\"instances\\": [\\"$(base64 -w0 PHOTO.jpg)\\"]}}"',
    "segmentation": 'curl -s {url} -H "Content-Type: application/json" '
                    '-d "{{\\"instances\\": [\\"$(base64 -w0 PHOTO.jpg)\\"]}}" '
                    "| jq -r '.predictions[0].mask' | base64 -d > mask.png",
    "pose": 'curl -s {url} -H "Content-Type: application/json" '
            '-d "{{\\"instances\\": [\\"$(base64 -w0 PHOTO.jpg)\\"]}}"',
    # The body through stdin: a clip's base64 soon passes the 128 KiB a single argument may have.
    "video": '(printf \'{{"instances": ["\'; base64 -w0 CLIP.mp4; printf \'"]}}\') '
             '| curl -s {url} -H "Content-Type: application/json" -d @-',
}


def task_module(model_uri: str) -> str:
    """The task module of a logged model, from its ``run_context.json`` (not its weights)."""
    import json

    import mlflow

    return json.loads(mlflow.artifacts.load_text(f"{model_uri}/artifacts/run_context.json"))["config"]["module"]


def curl_line(module: str, url: str) -> str:
    """A copy-paste ``curl`` request for a model of task module ``module`` served at ``url``."""
    return _CURL[module].format(url=url)


def server_command(model_uri: str, host: str, port: int) -> list[str]:
    """MLflow's scoring server for ``model_uri`` in this environment (no new virtualenv)."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "--host", host, "--port", str(port)]


def server_env(tracking_uri: str) -> dict[str, str]:
    """The environment of the server process: this interpreter's ``bin`` first on PATH (MLflow
    execs ``uvicorn`` from PATH, which lacks a venv's bin unless it is activated), and the
    project's store as tracking and registry URI (``models:/`` is resolved there)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def wait_until_ready(process: subprocess.Popen, ping: str, timeout: float = 300) -> None:
    """Block until the server answers ``/ping`` (UserError if it exits or never answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the model server exited with code {process.returncode} before it was ready "
                            "(its output is above; is the port already in use?)")
        try:
            with urllib.request.urlopen(ping, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise UserError(f"the model server did not answer {ping} within {timeout:.0f} s")


def start(model_uri: str, host: str, port: int, tracking_uri: str) -> subprocess.Popen:
    """Start the scoring server in its own process group: MLflow runs ``uvicorn`` as a child
    of its own, and ``stop`` must reach both."""
    return subprocess.Popen(server_command(model_uri, host, port), env=server_env(tracking_uri),
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
