"""`concurrency_limit`: training holds `devices` slots of a Prefect global concurrency limit on
the real (test) Prefect server, so two runs scheduled together train one after the other."""

import contextvars
import threading
import time

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from tests.conftest import make_project, mlflow_client, using_project
from zooflow import config, devices, steps
from zooflow.errors import UserError

LIMIT = "zooflow-test-gpu"


@pytest.fixture(scope="module")
def limit(prefect_server):
    with get_client(sync_client=True) as prefect:
        prefect.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=LIMIT, limit=1))
        yield prefect
        prefect.delete_global_concurrency_limit_by_name(LIMIT)


def _in_thread(function, *args) -> threading.Thread:
    """``function`` in a thread that sees this test's Prefect server (settings live in context vars)."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(function, *args))
    thread.start()
    return thread


def test_two_runs_take_turns_on_a_limit_of_one(tmp_path, limit):
    root = make_project(tmp_path / "project")
    with using_project(root):
        runs = [steps.start_run("classification", "vgg16-transfer", "smoke", overrides={"concurrency_limit": LIMIT})
                for _ in range(2)]
        data = steps.prepare_data(runs[0])
        errors = []

        def train(run):
            try:
                steps.train(run, data.task_md5)
            except BaseException as error:  # the test reports it, not the thread
                errors.append(error)

        threads = [_in_thread(train, run) for run in runs]
        held = set()
        while any(thread.is_alive() for thread in threads):
            held.add(limit.read_global_concurrency_limit_by_name(LIMIT).active_slots)
            time.sleep(0.1)
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert held <= {0, 1} and 1 in held  # a slot was held while training, never two
        assert limit.read_global_concurrency_limit_by_name(LIMIT).active_slots == 0
        # each run's training, from its train_seconds (logged when its slot is given back):
        # the two intervals do not overlap
        client = mlflow_client()
        spans = []
        for run in runs:
            (seconds,) = client.get_metric_history(run.run_id, "train_seconds")
            spans.append((seconds.timestamp / 1000 - seconds.value, seconds.timestamp / 1000))
        (first_start, first_end), (second_start, second_end) = sorted(spans)
        assert first_end <= second_start + 0.05, spans  # MLflow timestamps are whole milliseconds
        for run in runs:
            steps.finish(run, "FINISHED")


def test_a_missing_limit_is_named(project, prefect_server):
    cfg = config.resolve("classification", "vgg16-transfer", "smoke", overrides={"concurrency_limit": "no-such-gpus"})
    with pytest.raises(UserError, match="'no-such-gpus'.*prefect gcl create no-such-gpus"):
        with devices.slots(cfg):
            pytest.fail("trained without a slot")
