"""`devices: 2` through the real flow: two gloo processes on the CPU under torchrun train the
sentiment Transformer's smoke model as one MLflow run, and score what one process scores with
the same global batch.

Why they may be compared closely: with dropout off (``params.dropout=0``; text has no
augmentation, LayerNorm is per sample) nothing random depends on how a batch is split, so two
processes of 8 texts with averaged gradients take the same Adam steps as one process of 16,
up to the order float sums are taken in (~1e-7 relative; a few steps cannot grow that to 1e-4)."""

from pathlib import PurePosixPath

import pytest
import torch

from flows.pipeline import train_task
from tests.conftest import make_project, mlflow_client, using_project
from zooflow import steps
from zooflow.errors import UserError
from zooflow.training import checkpoint

# Long (torchrun with two gloo processes, several pipeline runs): marked, and kept in `make test`.
pytestmark = pytest.mark.slow

SAME = {"params": {"dropout": 0.0}}
TASK, MODEL = "sentiment", "transformer"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("devices") / "project", policy={"threshold": 0.0},
                        datasets=("sentiment-en",))
    with using_project(root):
        two = train_task(TASK, MODEL, "smoke", overrides={**SAME, "devices": 2})
        one = train_task(TASK, MODEL, "smoke", overrides=SAME)
        yield root, two, one


def test_two_processes_log_one_run(runs):
    _, two, one = runs
    client = mlflow_client()
    experiment = client.get_experiment_by_name(f"zooflow-{TASK}")
    logged = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_id for run in logged) == sorted([two["run_id"], one["run_id"]])
    run = client.get_run(two["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["devices"] == "2"
    assert "devices" not in client.get_run(one["run_id"]).data.tags
    # rank 0 alone reports epochs: one value per epoch, not one per process
    assert [m.step for m in client.get_metric_history(two["run_id"], "train_loss")] == [1]


def test_two_processes_score_as_one_with_the_same_global_batch(runs):
    _, two, one = runs
    client = mlflow_client()
    metrics_two, metrics_one = (client.get_run(r["run_id"]).data.metrics for r in (two, one))
    compared = [key for key in metrics_one if key.startswith(("val", "train_loss"))]
    assert "train_loss" in compared and "val.accuracy" in compared and "val_loss" in compared
    for key in compared:
        assert metrics_two[key] == pytest.approx(metrics_one[key], abs=1e-4), key


def test_rank_0_checkpoints_and_every_rank_resumes_from_it(runs):
    root, _, _ = runs
    with using_project(root):
        overrides = {**SAME, "devices": 2}
        first = steps.start_run(TASK, MODEL, "smoke", overrides=overrides)
        data = steps.prepare_data(first)
        steps.train(first, data.task_md5)
        folder = steps.checkpoint_dir(first, data.task_md5)
        # one writer: the checkpoint and the claim's owner file, no partial or per-rank files
        assert sorted(p.name for p in folder.iterdir()) == [checkpoint.LAST, "owner.json"]
        saved = checkpoint.load(folder)
        logged = mlflow_client().get_metric_history(first.run_id, "train_loss")
        assert [h["train_loss"] for h in saved["history"]] == pytest.approx([m.value for m in logged])
        steps.finish(first, "FAILED")  # the checkpoint stays for a rerun
        rerun = steps.start_run(TASK, MODEL, "smoke", overrides=overrides)
        trained = steps.train(rerun, data.task_md5)
        # every rank skipped the checkpointed epochs: had rank 1 not resumed, it would train one
        # alone, find rank 0 gone from the group and fail the step
        assert trained.resumed_from_epoch == saved["epoch"] == 1
        steps.finish(rerun, "FINISHED")


def test_a_users_error_in_a_training_process_is_told_once_as_the_steps_own(runs, capfd):
    root, _, _ = runs
    with using_project(root):
        run = steps.start_run(TASK, MODEL, "smoke", overrides={**SAME, "devices": 2, "seed": 7})
        data = steps.prepare_data(run)
        folder = steps.checkpoint_dir(run, data.task_md5)
        folder.mkdir(parents=True)
        torch.save({"epoch": 1, "payload": PurePosixPath("not a weight")}, folder / checkpoint.LAST)
        with pytest.raises(UserError, match=f"{folder / checkpoint.LAST}: this checkpoint holds objects"):
            steps.train(run, data.task_md5)
        steps.finish(run, "FAILED")
    assert "Traceback" not in capfd.readouterr().err  # the processes' tracebacks stay in their log file
