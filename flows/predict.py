"""Batch inference as a Prefect flow: ``zooflow predict NAME@ALIAS --input PATH --output FILE``.

The version is resolved once (an alias moving meanwhile does not change the job); the inputs are
read (``registry/batch.py``), answered ``batch_size`` at a time with progress lines, and written
as one parquet table whose ``model`` and ``version`` columns name what answered."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger


@flow(name="batch-predict", flow_run_name="predict-{spec}", log_prints=True)
def batch_predict(spec: str, input_path: str, output_path: str, batch_size: int = 32) -> dict:
    """Answer every input under ``input_path`` with version ``spec``; a summary (rows, errors,
    the version used, the output file)."""
    import json

    import mlflow

    from zooflow import progress
    from zooflow.registry import batch, serving, versions

    logger = get_run_logger()
    ref = versions.resolve_spec(spec)
    uri = f"models:/{ref.name}/{ref.version}"
    module = json.loads(mlflow.artifacts.load_text(f"{uri}/artifacts/run_context.json"))["config"]["module"]
    columns = serving.expected_for(module).columns
    inputs = batch.read_inputs(Path(input_path), columns)
    logger.info("%s v%s on %d input(s) from %s", ref.name, ref.version, len(inputs), input_path)
    model = mlflow.pyfunc.load_model(uri)
    answers = []
    with progress.phase(f"predicting with {ref.name} v{ref.version}", len(inputs), "inputs") as shown:
        for part in batch.batches(inputs, batch_size, columns):
            answers.append(batch.answer_or_errors(model, part, columns))
            shown.advance(len(part))
    table = pd.concat(answers, ignore_index=True)
    table["model"], table["version"] = ref.name, ref.version
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)
    errors = int(table["error"].notna().sum()) if "error" in table else 0
    logger.info("wrote %d answer row(s) to %s (%d input(s) refused)", len(table), output, errors)
    return {"model": ref.name, "version": ref.version, "inputs": len(inputs), "rows": len(table), "errors": errors,
            "output": str(output)}
