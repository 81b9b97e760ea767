"""The governed pipeline for one task model, as one Prefect flow.

    data (DVC) -> validate (GX) -> train -> evaluate -> register (MLflow) -> promote -> card

Run it with ``zooflow run classification --model vgg16-transfer --profile demo`` or
``python -m flows.pipeline classification vgg16-transfer demo``. Without ``PREFECT_API_URL``
Prefect starts a temporary local API; with it, runs show up on that server.
The flow knows nothing about any particular task: every step goes through the task contract.
With ``policy.approval: required`` and ``policy.approval_wait: SECONDS`` a candidate's run ends
paused for its review (``flows/approval.py``).
"""

from __future__ import annotations

import re
import sys

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from pathlib import Path

from flows import approval
from zooflow import steps
from zooflow.registry import versions

# I/O steps retry (a locked SQLite file, a busy remote); training never does: a retry would
# hide a real failure and the rerun resumes from the checkpoint anyway.
IO = {"retries": 2, "retry_delay_seconds": 2}

start_run = task(steps.start_run, name="start-run", **IO)
prepare_data = task(steps.prepare_data, name="data", **IO)
validate_data = task(steps.validate_data, name="validate")
train = task(steps.train, name="train", retries=0)
evaluate = task(steps.evaluate, name="evaluate")
register = task(steps.register, name="register", **IO)
promote = task(steps.promote, name="promote", **IO)
write_card = task(steps.write_card, name="model-card", **IO)
finish = task(steps.finish, name="finish", **IO)


def _artifact_key(name: str, version: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"card-{name}-v{version}".lower())


# Runs are named after what they train ("classification-vgg16-transfer-smoke"), not Prefect's
# random adjective-animal names, so a run list reads like the registry.
@flow(name="train-task", flow_run_name="{task}-{model}-{profile}", log_prints=True)
def train_task(task: str, model: str, profile: str = "demo", seed: int | None = None,
               overrides: dict | None = None, trigger: str | None = None) -> dict:
    """Run one task model through the whole governed chain (``seed`` and ``overrides``, checked
    by ``config.parse_overrides``, replace the task file's values; ``trigger`` says why, when a
    data change started it); returns the summary row."""
    from zooflow.governance.card import artifact_markdown  # lazily, like steps: keeps imports cheap

    run = start_run(task, model, profile, seed, overrides, trigger)
    try:
        data = prepare_data(run)
        validation = validate_data(run, data)
        trained = train(run, data.task_md5)  # checkpoints keyed by the task's own data version
        evaluation = evaluate(run, trained)
        registered = register(run, data, validation, trained, evaluation)
        decision = promote(run, registered, evaluation)
        card = write_card(run, data, validation, trained, evaluation, registered, decision)
        # The card as a Prefect artifact too, so it shows beside the flow run in the Prefect UI;
        # its figures travel inside it (relative links resolve to nothing there).
        create_markdown_artifact(artifact_markdown(Path(card.markdown).read_text(), evaluation.figures,
                                                   run.run_id),
                                 key=_artifact_key(registered.name, registered.version),
                                 description=f"model card of {registered.name} v{registered.version}")
    except BaseException as error:
        # Ctrl-C / SIGTERM (not an Exception) is KILLED; the checkpoint stays for the rerun.
        finish(run, "FAILED" if isinstance(error, Exception) else "KILLED")
        raise
    finish(run, "FINISHED")
    row = {**steps.summary_row(registered, evaluation, decision), "run_id": run.run_id}
    wait = steps.run_config(run).policy.approval_wait
    if decision.alias == versions.CANDIDATE and wait:
        # after the run is finished: the wait is the registry's, the training run is done
        row |= approval.await_review(registered, wait)
    return row


if __name__ == "__main__":
    print(train_task(*sys.argv[1:4]))
