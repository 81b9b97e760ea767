"""Data per task, with real DVC: a run pulls and checks only its task's sub-folder of data/,
and its checkpoints are keyed by that folder's version alone."""

import subprocess

import pytest

from tests import step_values
from zooflow import steps
from zooflow.config import resolve
from zooflow.data import store

TEXTS = {"train/pos/a.txt": "good", "train/neg/b.txt": "bad", "test/pos/c.txt": "fine", "test/neg/d.txt": "poor",
         "classes.txt": "neg\npos\n"}


def add_sentiment_folder(root):
    """A tiny second task folder (``data/sentiment-en``), recorded as a new data version."""
    for name, text in TEXTS.items():
        path = root / "data" / "sentiment-en" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    store.commit(root)


def git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def two_tasks(project):
    add_sentiment_folder(project)
    return project


def test_an_unrecorded_edit_blocks_only_the_task_whose_folder_it_is_in(two_tasks):
    before = store.version(two_tasks, "classification")
    sentiment = two_tasks / "data" / "sentiment-en"
    (sentiment / "train" / "pos" / "a.txt").write_text("edited, not committed")
    (sentiment / "train" / "pos" / "new.txt").write_text("added, not committed")
    (sentiment / "test" / "neg" / "d.txt").unlink()

    assert store.ensure(two_tasks, "classification") == before
    with pytest.raises(store.DataError) as error:
        store.ensure(two_tasks, "sentiment-en")
    message = str(error.value)
    assert f"{sentiment} differs from data.dvc; record it with `zooflow data commit`" in message
    for change in ("modified sentiment-en/train/pos/a.txt", "added sentiment-en/train/pos/new.txt",
                   "deleted sentiment-en/test/neg/d.txt"):
        assert change in message


def test_a_fresh_clone_pulls_only_the_folder_its_task_needs(two_tasks, tmp_path, monkeypatch):
    git(two_tasks, "add", "data.dvc", ".gitignore", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
    git(two_tasks, "commit", "-q", "-m", "data version")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(two_tasks), str(clone)], check=True)
    # The default remote is a git-ignored folder inside each checkout; a clone reaches the
    # data through a shared remote, here the original's storage folder.
    store.init(clone, remote_url=str(two_tasks / store.DEFAULT_REMOTE_FOLDER))
    assert not (clone / "data").exists()

    version = store.ensure(clone, "classification")
    assert version == store.version(two_tasks, "classification")
    assert len(list((clone / "data" / "classification").rglob("*.jpg"))) == 200
    assert not (clone / "data" / "sentiment-en").exists()
    sentiment_md5s = set(store.recorded(two_tasks, "sentiment-en").values())
    cached = {f"{p.parent.name}{p.name}" for p in (clone / ".dvc" / "cache").rglob("*") if p.is_file()}
    assert not sentiment_md5s & cached  # not even downloaded into the cache
    from typer.testing import CliRunner

    from zooflow.cli import app

    monkeypatch.setenv("ZOOFLOW_HOME", str(clone))
    status = CliRunner().invoke(app, ["data", "status"])
    assert status.exit_code == 0, status.output
    assert f"classification: data/classification {version.tag} ({version.files} files): matches data.dvc" in status.output
    assert "sentiment: data/sentiment-en" in status.output and "not pulled (a run of this task pulls it)" in status.output
    # With a folder left out, recording data/ would drop it from the new version: refused.
    with pytest.raises(store.DataError, match="data/sentiment-en recorded in .* but not on disk"):
        store.commit(clone)

    assert store.ensure(clone, "sentiment-en") == store.version(two_tasks, "sentiment-en")
    assert store.ensure(clone, "classification") == version  # the first folder is left as it was


def test_checkpoints_are_keyed_by_the_tasks_own_data_version(two_tasks):
    run = step_values.run_of(resolve("classification", "vgg16-transfer", "smoke"))
    first = store.version(two_tasks, "classification")
    (two_tasks / "data" / "sentiment-en" / "train" / "pos" / "more.txt").write_text("another review")
    store.commit(two_tasks)  # a new data.dvc version that differs only outside classification/
    other_task_changed = store.version(two_tasks, "classification")
    assert other_task_changed.data_md5 != first.data_md5
    assert steps.checkpoint_dir(run, other_task_changed.task_md5) == steps.checkpoint_dir(run, first.task_md5)

    image = next((two_tasks / "data" / "classification" / "train" / "face").iterdir())
    image.write_bytes(image.read_bytes() + b"\0")
    store.commit(two_tasks)  # a change inside the task's folder
    own_changed = store.version(two_tasks, "classification")
    assert steps.checkpoint_dir(run, own_changed.task_md5) != steps.checkpoint_dir(run, first.task_md5)


def test_validation_reuses_the_manifest_of_an_unchanged_task_data_version(project, monkeypatch):
    import pandas as pd

    from zooflow.tasks import get_task
    from zooflow.validation import manifest_cache
    from zooflow.validation.runner import validate

    task = get_task("classification")
    original, calls = task.manifest, []
    monkeypatch.setattr(task, "manifest", lambda ctx: calls.append(ctx) or original(ctx))
    run = steps.start_run("classification", "vgg16-transfer", "smoke")
    data = steps.prepare_data(run)

    first = steps.validate_data(run, data)
    assert steps.validate_data(run, data) == first
    assert len(calls) == 1  # the second validation read the cached manifest

    # The cached table is the task's table, dtypes included, and GX judges both alike.
    [cached_file] = manifest_cache.cache_folder().iterdir()
    cached, fresh = pd.read_parquet(cached_file), original(calls[0])
    pd.testing.assert_frame_equal(cached, fresh, check_exact=True)
    reports = [validate(table, task.expectations(calls[0]), suite_name=name)
               for table, name in ((cached, "cached"), (fresh, "fresh"))]
    assert len({repr((r.success, r.failures, [item["result"] for item in r.result["results"]])) for r in reports}) == 1

    # A changed file is a new task data version: its manifest is built afresh.
    image = next((project / "data" / "classification" / "train" / "face").iterdir())
    payload = bytearray(image.read_bytes())
    payload[-10] ^= 0xFF  # a new, still decodable image (not a copy, so no leak between splits)
    (image.parent / "variant.jpg").write_bytes(bytes(payload))
    store.commit(project)
    changed = steps.prepare_data(run)
    assert steps.validate_data(run, changed).rows == first.rows + 1
    assert len(calls) == 2

    # An unreadable cache file is rebuilt, not fatal.
    for file in manifest_cache.cache_folder().iterdir():
        file.write_bytes(b"not parquet")
    assert steps.validate_data(run, changed).rows == first.rows + 1
    assert len(calls) == 3
