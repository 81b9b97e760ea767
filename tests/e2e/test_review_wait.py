"""The pipeline flow paused for a review (``policy.approval: required`` with
``policy.approval_wait``), against a real Prefect server: resumed with a typed input (the
Prefect UI's route, here through ``resume_flow_run``) the version becomes champion; a
``zooflow review --reject`` resumes the waiting flow and nothing goes live; with nobody
answering the flow completes and the version stays candidate."""

from __future__ import annotations

import threading
import time
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run

from flows.pipeline import train_task
from tests.cli import run_cli
from tests.conftest import make_project, using_project
from zooflow.registry import review, versions


@pytest.fixture(scope="module")
def root(tmp_path_factory, prefect_server):
    project = make_project(tmp_path_factory.mktemp("review-wait") / "project",
                           policy={"threshold": 0.0, "approval": "required"})
    with using_project(project):
        yield project


def _set_wait(root, seconds: int) -> None:
    task_file = root / "configs" / "classification.yaml"
    raw = yaml.safe_load(task_file.read_text())
    raw["policy"]["approval_wait"] = seconds
    task_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def _train_in_background(model: str) -> tuple[threading.Thread, dict]:
    """The flow in a thread, as a user's `zooflow run` would block in its own process."""
    outcome: dict = {}

    def target():
        outcome["state"] = train_task("classification", model, "smoke", return_state=True)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _paused_flow_run(name: str, thread: threading.Thread) -> UUID:
    """The id of the flow run once it is paused for the review of ``name`` v1."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and thread.is_alive():
        try:
            flow_run = versions.get(name, "1").tags.get(review.FLOW_RUN_TAG)
        except LookupError:
            flow_run = None
        if flow_run:
            with get_client(sync_client=True) as client:
                if client.read_flow_run(UUID(flow_run)).state.is_paused():
                    return UUID(flow_run)
        time.sleep(0.5)
    raise AssertionError(f"the flow never paused for the review of {name} v1")


def test_resumed_with_an_approval_the_candidate_becomes_champion(root):
    _set_wait(root, 300)
    name = "classification-vgg16-transfer"
    thread, outcome = _train_in_background("vgg16-transfer")
    flow_run = _paused_flow_run(name, thread)
    assert versions.by_alias(name, versions.CANDIDATE).version == "1"
    assert versions.by_alias(name, versions.CHAMPION) is None  # nothing live while it waits
    resume_flow_run(flow_run, run_input={"approve": True, "reviewer": "Ana Reviewer", "comment": "card read"})
    thread.join(120)
    state = outcome["state"]
    assert state.is_completed()
    row = state.result()
    assert (row["alias"], row["review"]) == ("champion", "approved by Ana Reviewer")
    champion = versions.by_alias(name, versions.CHAMPION)
    assert champion.version == "1" and versions.by_alias(name, versions.CANDIDATE) is None
    assert (champion.tags["review.decision"], champion.tags["review.reviewer"], champion.tags["review.comment"]) == \
        ("approved", "Ana Reviewer", "card read")
    log_row = versions.promotion_log(name)[0]
    assert (log_row["kind"], log_row["who"], log_row["alias"]) == ("review", "Ana Reviewer", "champion")


def test_a_cli_rejection_resumes_the_waiting_flow_and_nothing_goes_live(root):
    _set_wait(root, 300)
    name = "classification-vgg16-finetune"
    thread, outcome = _train_in_background("vgg16-finetune")
    flow_run = _paused_flow_run(name, thread)
    code, output = run_cli("review", name, "1", "--reject", "--comment", "overfits", "--reviewer", "Bo")
    assert code == 0, output
    assert f"resumed flow run {flow_run}" in output
    thread.join(120)
    assert not thread.is_alive(), "the resumed flow did not finish"
    row = outcome["state"].result()
    assert (row["alias"], row["review"]) == ("rejected", "rejected by Bo (zooflow review)")
    assert versions.by_alias(name, versions.CHAMPION) is None and versions.by_alias(name, versions.CANDIDATE) is None
    assert [r["kind"] for r in versions.promotion_log(name)].count("review") == 1  # reviewed once, by the CLI


def test_with_no_answer_the_flow_completes_and_the_version_stays_candidate(root):
    _set_wait(root, 3)
    name = "classification-mobilenetv2-transfer"
    state = train_task("classification", "mobilenetv2-transfer", "smoke", return_state=True)
    assert state.is_completed()  # an unanswered review is no failure
    row = state.result()
    assert (row["alias"], row["review"]) == ("candidate", "no review within 3 s: stays candidate")
    assert versions.by_alias(name, versions.CANDIDATE).version == "1"
    assert versions.by_alias(name, versions.CHAMPION) is None
    code, output = run_cli("review", name, "1", "--approve", "--comment", "late but fine")
    assert code == 0 and "approved: champion" in output, output
    assert "resumed" not in output  # the flow is over: nothing to resume
