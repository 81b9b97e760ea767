"""Human approval, through the real flow, registry and CLI: with ``policy.approval: required`` a
version that passes the policy becomes ``candidate`` and nothing goes live; ``zooflow review
--approve`` makes it champion, ``--reject`` takes the candidate alias off; the version keeps the
review and the promotion log names the reviewer."""

from __future__ import annotations

import pytest
import yaml

from flows.pipeline import train_task
from tests.cli import assert_one_clear_message, run_cli
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.registry import tracking, versions


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("review") / "project", policy={"threshold": 0.0,
                                                                               "approval": "required"})
    task_file = root / "configs" / "classification.yaml"
    raw = yaml.safe_load(task_file.read_text())
    raw["models"] = {name: raw["models"][name] for name in ("vgg16-transfer", "vgg16-finetune")}
    task_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    with using_project(root):
        yield root, {name: train_task("classification", name, "smoke") for name in raw["models"]}


def test_a_passing_version_waits_as_candidate(project):
    _, results = project
    assert {row["alias"] for row in results.values()} == {"candidate"}
    with using_project(project[0]):
        assert versions.by_alias("classification-vgg16-transfer", versions.CHAMPION) is None
        assert versions.by_alias("classification-vgg16-transfer", versions.CANDIDATE).version == "1"


def test_approve_makes_it_champion_and_the_log_names_the_reviewer(project, monkeypatch):
    root, _ = project
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    code, output = run_cli("review", "classification-vgg16-transfer", "1", "--approve", "--comment",
                           "card read; metrics on the same data", "--reviewer", "Ana Reviewer")
    assert code == 0, output
    assert "approved: champion" in output
    name = "classification-vgg16-transfer"
    champion = versions.by_alias(name, versions.CHAMPION)
    assert champion.version == "1" and versions.by_alias(name, versions.CANDIDATE) is None
    assert (champion.tags["review.decision"], champion.tags["review.reviewer"]) == ("approved", "Ana Reviewer")
    row = versions.promotion_log(name)[0]
    assert (row["kind"], row["who"], row["alias"]) == ("review", "Ana Reviewer", "champion")
    assert row["account"] == champion.tags["review.account"] == tracking.who()  # the name is declared, this is not
    assert "card read" in row["reason"]
    code, output = run_cli("history", name)
    assert code == 0 and f"Ana Reviewer (account {tracking.who()})" in " ".join(output.split()), output
    code, output = run_cli("review", name, "1", "--reject", "--comment", "again")
    assert code == 1
    assert_one_clear_message(output, "v1 was already approved by Ana Reviewer")


def test_reject_leaves_no_champion_and_keeps_the_review(project, monkeypatch):
    root, _ = project
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    name = "classification-vgg16-finetune"
    code, output = run_cli("review", name, "1", "--reject", "--comment", "overfits the faces")
    assert code == 0, output
    assert versions.by_alias(name, versions.CHAMPION) is None and versions.by_alias(name, versions.CANDIDATE) is None
    assert versions.get(name, "1").tags["review.decision"] == "rejected"
    assert versions.promotion_log(name)[0]["kind"] == "review"
    code, output = run_cli("review", name, "1", "--approve", "--reject", "--comment", "x")
    assert code == 1 and "say --approve or --reject" in output
    assert client().get_registered_model(name).name == name
