"""Real DVC in a temporary git repo: add, push, pull, and the data version."""

import shutil

import pytest

from zooflow.data import store


def test_commit_push_pull_roundtrip(project):
    before = store.version(project, "classification")
    assert before.files == 202  # 200 images, classes.txt and the attribution README.md
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    store.pull(project)
    assert (project / "data" / "classification" / "val" / "face").is_dir()
    assert store.is_clean(project)
    assert store.version(project, "classification") == before


def test_ensure_refuses_data_that_differs_from_data_dvc(project):
    victim = next((project / "data" / "classification" / "train" / "face").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(store.DataError, match="differs from data.dvc"):
        store.ensure(project, "classification")


def test_ensure_pulls_missing_data(project):
    shutil.rmtree(project / "data")
    version = store.ensure(project, "classification")
    assert version.task_folder == "classification"
    assert (project / "data" / "classification" / "classes.txt").is_file()


def test_task_version_ignores_other_tasks_data(project):
    before = store.version(project, "classification")
    other = project / "data" / "other-task"
    other.mkdir()
    (other / "x.txt").write_text("another task's data")
    new_md5 = store.commit(project)
    after = store.version(project, "classification")
    assert new_md5 != before.data_md5          # the whole data/ changed ...
    assert after.task_md5 == before.task_md5   # ... this task's part did not
    assert after.tag != before.tag


def test_task_version_changes_with_its_data(project):
    before = store.version(project, "classification")
    (project / "data" / "classification" / "val" / "face" / "extra.jpg").write_bytes(
        next((project / "data" / "classification" / "train" / "face").iterdir()).read_bytes())
    store.commit(project)
    assert store.version(project, "classification").task_md5 != before.task_md5


def test_demo_data_is_deterministic(project, tmp_path):
    from zooflow.data.demo import build_classification

    build_classification(tmp_path / "again")
    for file in (project / "data" / "classification").rglob("*.jpg"):
        assert (tmp_path / "again" / file.relative_to(project / "data" / "classification")).read_bytes() == file.read_bytes()
