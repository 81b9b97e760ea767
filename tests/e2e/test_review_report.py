"""The governance review report and ``zooflow history``, through the real flow, registry, DVC
and CLI: v1 is approved as champion; the data then changes (faces removed, non-faces added),
the code gets a commit and v2 trains with another epoch count. The report sets v2 beside v1
with the figures the runs recorded, counts the changed files per class folder, shows the
changed config key and the commits between them, and says so plainly when a data listing is
not on this machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from flows.pipeline import train_task
from tests.cli import assert_one_clear_message, run_cli
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.registry import tracking, versions
from zooflow.registry.review import review

MODEL = "vgg16-transfer"
NAME = f"classification-{MODEL}"
REMOVED_FACES, ADDED_NONFACES = 4, 3


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("review_report") / "project",
                        policy={"threshold": 0.0, "approval": "required"})
    task_file = root / "configs" / "classification.yaml"
    raw = yaml.safe_load(task_file.read_text())
    raw["models"] = {MODEL: raw["models"][MODEL]}  # one model keeps the test short
    task_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    early = {}  # what review-report says before there are two versions to compare
    with using_project(root):
        assert train_task("classification", MODEL, "smoke")["alias"] == "candidate"
        early["no champion"] = run_cli("review-report", NAME, "--output", root / "reports")
        review(NAME, "1", approve=True, comment="first champion: card read", reviewer="Ana Reviewer")
        early["no candidate"] = run_cli("review-report", NAME, "--output", root / "reports")
        source = tmp_path_factory.mktemp("new_data") / "classification"
        shutil.copytree(root / "data" / "classification", source)
        for image in sorted((source / "train" / "face").iterdir())[:REMOVED_FACES]:
            image.unlink()
        noise = np.random.default_rng(0)
        for index in range(ADDED_NONFACES):
            Image.fromarray(noise.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                source / "val" / "nonface" / f"noise_{index}.jpg")
        code, output = run_cli("data", "import", "classification", source)
        assert code == 0, output
        subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q",
                        "--allow-empty", "-m", "head: one epoch is enough"], check=True)
        train_task("classification", MODEL, "smoke", overrides={"epochs": 1})
        yield root, early


@pytest.fixture
def cli_project(project, monkeypatch):
    root, _ = project
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    return root


class _Tables(HTMLParser):
    """Every table of an HTML page as rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def _markdown_rows(text: str) -> list[list[str]]:
    """The rows of every markdown table, cells without their emphasis and code marks."""
    return [[re.sub(r"\*\*|`", "", cell).strip() for cell in line.strip().strip("|").split(" | ")]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def _report(tmp_path: Path, *args: str) -> tuple[str, str, str]:
    code, output = run_cli("review-report", NAME, "--output", tmp_path, *args)
    assert code == 0, output
    written = {Path(line.split("wrote ", 1)[1].strip()) for line in output.splitlines() if line.startswith("wrote ")}
    assert {path.suffix for path in written} == {".md", ".html"} and all(path.parent == tmp_path for path in written)
    by_suffix = {path.suffix: path.read_text(encoding="utf-8") for path in written}
    return by_suffix[".md"], by_suffix[".html"], output


def test_the_report_sets_the_candidate_beside_the_champion(cli_project, tmp_path):
    markdown, page, _ = _report(tmp_path)
    assert markdown.startswith(f"# Review: {NAME} champion v1 vs candidate v2")
    candidate, champion = versions.get(NAME, "2"), versions.get(NAME, "1")
    recorded = client().get_run(candidate.run_id).data.metrics
    assert client().get_run(candidate.run_id).data.tags["champion_rescored_version"] == "1"
    rows = {row[0]: row for row in _markdown_rows(markdown)}
    # accuracy: the candidate, the champion re-scored on the candidate's data, the champion as
    # registered, the baseline on the candidate's data
    assert rows["accuracy"][1:] == [f"{recorded['val.accuracy']:.4f}", f"{recorded['champion.accuracy']:.4f}",
                                    f"{client().get_run(champion.run_id).data.metrics['val.accuracy']:.4f}",
                                    f"{recorded['baseline.accuracy']:.4f}"]
    # what changed in data/classification, per class folder: added, removed, modified
    assert rows["train/face"][1:] == ["0", str(REMOVED_FACES), "0"]
    assert rows["val/nonface"][1:] == [str(ADDED_NONFACES), "0", "0"]
    assert rows["epochs"][1:] == ["2", "1"]  # the config key the candidate's run changed
    assert "head: one epoch is enough" in markdown  # git log --oneline v1..v2
    assert "Reviewed: approved by Ana Reviewer: first champion: card read" in re.sub(r"\*\*|`", "", markdown)
    for version in (champion, candidate):
        assert f"/runs/{version.run_id}/artifacts/card/model_card.html" in markdown
    parser = _Tables()
    parser.feed(page)
    html_rows = [row for table in parser.tables for row in table]
    assert html_rows == _markdown_rows(markdown)  # the page holds the markdown's figures, cell for cell
    assert f'href="http://127.0.0.1:5000/#/experiments/' in page


def test_a_data_listing_not_on_this_machine_is_said_plainly(cli_project, tmp_path):
    champion_data = versions.get(NAME, "1").tags["data_md5"]
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    cached = cli_project / ".dvc" / "cache" / "files" / "md5" / champion_data[:2] / champion_data[2:]
    remote = cli_project / ".dvc-storage" / "files" / "md5" / champion_data[:2] / champion_data[2:]
    shutil.move(cached, shelf / "cached")
    try:
        markdown, _, _ = _report(tmp_path / "from_remote")  # the local remote still has it
        assert {row[0]: row for row in _markdown_rows(markdown)}["train/face"][1:] == ["0", str(REMOVED_FACES), "0"]
        shutil.move(remote, shelf / "remote")
        try:
            markdown, page, _ = _report(tmp_path / "nowhere")
        finally:
            shutil.move(shelf / "remote", remote)
    finally:
        shutil.move(shelf / "cached", cached)
    assert f"DVC's listing of the data v1 was trained on ({champion_data}) is not available here" in markdown
    assert "train/face" not in markdown and "is not available here" in page


def test_without_a_champion_or_a_candidate_there_is_nothing_to_review(project):
    root, early = project
    for moment, message in (("no champion", f"{NAME} has no champion"),
                            ("no candidate", f"{NAME} has no candidate: its only version is the champion v1")):
        code, output = early[moment]
        assert code == 1, output
        assert_one_clear_message(output, message)
    assert not (root / "reports").exists()


def test_bad_names_and_versions_are_one_clear_message(cli_project, tmp_path):
    for args, message in ((("review-report", "no-such-model"), "there is no registered model named 'no-such-model'"),
                          (("review-report", NAME, "--candidate", "1"), f"{NAME} v1 is the champion itself"),
                          (("review-report", NAME, "--candidate", "9"), f"{NAME} has no version 9"),
                          (("history", "no-such-model"), "there is no registered model named 'no-such-model'")):
        code, output = run_cli(*args, "--output", tmp_path) if args[0] == "review-report" else run_cli(*args)
        assert code == 1, output
        assert_one_clear_message(output, message)
    assert not list(tmp_path.iterdir())
    (tmp_path / "taken").write_text("a file, not a folder")
    code, output = run_cli("review-report", NAME, "--output", tmp_path / "taken")
    assert code == 1
    assert_one_clear_message(output, f"cannot write the review report into {tmp_path / 'taken'}")


def test_history_lists_every_decision_with_the_reviewer(cli_project):
    code, output = run_cli("history", NAME)
    assert code == 0, output
    rows = [line for line in output.splitlines() if re.match(r"^│ \d{4}-", line)]
    kinds = [line.split("│")[4].strip() for line in rows]
    assert kinds == ["policy", "review", "policy"]  # v2 by policy, v1 approved, v1 by policy: newest first
    review_row = rows[1].split("│")
    # the declared reviewer, and the account that sent the review (this machine's user here)
    assert (review_row[2].strip(), review_row[3].strip(), review_row[5].strip()) == \
        ("1", "champion", f"Ana Reviewer (account {tracking.who()})")
    assert "accuracy" in rows[0]  # the policy row's metrics
