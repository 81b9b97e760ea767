"""Two runs of the same model started at the same moment, as two real processes: each trains
its own weights (neither resumes the other's checkpoint), each registers its own version with
its own lineage, exactly one ends champion - the better one (a tie keeps the first) - and the
promotion log tells that story. Repeated: ``ZOOFLOW_RACE_ROUNDS`` (default 2) rounds."""

import os

import pytest

from tests.conftest import make_project, using_project
from tests.processes import prefect_api_url, set_profile, start
from zooflow.registry import tracking, versions

MODEL, NAME = "vgg16-finetune", "classification-vgg16-finetune"
ARGS = ("run", "classification", "--model", MODEL, "--profile", "smoke")
EPOCHS = 15
ROUNDS = int(os.environ.get("ZOOFLOW_RACE_ROUNDS", "2"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_simultaneous_runs_train_and_register_their_own_and_one_champion_wins(tmp_path, prefect_server, round_):
    root = make_project(tmp_path / "project", policy={"threshold": 0.0, "margin": 0.0})
    set_profile(root, "classification", MODEL, "smoke", epochs=EPOCHS)
    logs = [tmp_path / f"run-{n}.log" for n in (1, 2)]
    processes = [start(root, *ARGS, prefect_api=prefect_api_url(), log=log) for log in logs]
    for process, log in zip(processes, logs):
        assert process.wait(timeout=600) == 0, log.read_text()

    with using_project(root):
        client = tracking.connect()
        experiment = client.get_experiment_by_name("zooflow-classification").experiment_id
        runs = client.search_runs([experiment])
        assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
        for run in runs:  # each trained every epoch itself; nobody resumed anybody
            assert run.data.tags["resumed_from_epoch"] == "0" and "resumed_from_run" not in run.data.tags
            assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == list(range(1, EPOCHS + 1))
        overlapped = max(r.info.start_time for r in runs) < min(r.info.end_time for r in runs)
        assert overlapped, "the two runs did not run at the same time"
        assert sorted(run.data.tags["checkpoint_folder"] for run in runs) in (["private", "shared"], ["shared", "shared"])

        # Keys as strings: MLflow gives a ModelVersion's version as an int, VersionRef as a str.
        found = {str(mv.version): mv for mv in client.search_model_versions(f"name = '{NAME}'")}
        assert len(found) == 2
        assert {mv.run_id for mv in found.values()} == {run.info.run_id for run in runs}
        assert {mv.tags["run_id"] for mv in found.values()} == {run.info.run_id for run in runs}
        champion = versions.by_alias(NAME, versions.CHAMPION)
        other = next(mv for version, mv in found.items() if version != champion.version)
        assert client.get_model_version(NAME, other.version).aliases in (["challenger"], ["previous-champion"])
        best = max(float(mv.tags["primary_metric_value"]) for mv in found.values())
        assert float(champion.tags["primary_metric_value"]) == best

        log = versions.promotion_log(NAME)
        assert len(log) == 2
        first, second = sorted(log, key=lambda row: row["when"])
        assert first["alias"] == "champion" and first["from_version"] == ""
        if second["alias"] == "champion":  # the later decision won: it replaced the first
            assert second["from_version"] == first["version"] and champion.version == second["version"]
        else:  # it lost (or tied) against the first, re-scored on the same data
            assert second["alias"] == "challenger" and f"champion v{first['version']}" in second["reason"]
            assert champion.version == first["version"]
