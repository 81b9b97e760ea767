"""The promotion policy as a table of cases."""

import pytest

from zooflow.config import Policy
from zooflow.registry.policy import NOT_TRAINED, Candidate, decide

POLICY = Policy(threshold=0.7, margin=0.01, gpu_required_profiles=("book",))
LINEAGE = {"run_id": "r", "git_commit": "c", "data_version": "d", "config_hash": "h"}


def candidate(metric=0.9, validation=True, lineage=LINEAGE, profile="demo", device="cpu"):
    return Candidate(metric=metric, validation_passed=validation, lineage=dict(lineage), profile=profile, device=device)


CASES = [
    # name, candidate, champion metric, promote?, a reason that must appear
    ("first version, no champion", candidate(), None, True, "ok: no current champion"),
    ("beats the champion by the margin", candidate(0.90), 0.85, True, "ok: beats champion"),
    ("ties the champion", candidate(0.85), 0.85, False, "FAIL: does not beat champion"),
    ("beats by less than the margin", candidate(0.855), 0.85, False, "FAIL: does not beat champion"),
    ("loses to the champion", candidate(0.80), 0.85, False, "FAIL: does not beat champion"),
    ("below the threshold", candidate(0.60), None, False, "FAIL: accuracy 0.6000 misses threshold"),
    ("validation failed", candidate(validation=False), None, False, "FAIL: data validation failed"),
    ("missing lineage", candidate(lineage={**LINEAGE, "git_commit": ""}), None, False, "FAIL: lineage incomplete: no git_commit"),
    ("book profile trained on CPU", candidate(profile="book", device="cpu"), None, False, "the policy requires a GPU"),
    ("book profile trained on a GPU", candidate(profile="book", device="cuda:NVIDIA H100"), None, True, "ok: book profile trained on cuda"),
    ("book profile evaluated only (epochs 0)", candidate(profile="book", device=NOT_TRAINED), None, True,
     "ok: book profile not trained (epochs 0): no GPU needed"),
    ("evaluated only, still below the threshold", candidate(0.6, profile="book", device=NOT_TRAINED), None, False,
     "FAIL: accuracy 0.6000 misses threshold"),
]


@pytest.mark.parametrize("name,cand,champion,promote,reason", CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, cand, champion, promote, reason):
    decision = decide(POLICY, "accuracy", "max", cand, champion, champion_version="3")
    assert decision.promote is promote
    assert decision.alias == ("champion" if promote else "challenger")
    assert any(reason in line for line in decision.reasons), decision.reasons


def test_every_check_is_reported():
    decision = decide(POLICY, "accuracy", "max", candidate(profile="book", device="cpu"), 0.5, "1")
    assert len(decision.reasons) == 5  # threshold, champion, validation, lineage, device


def test_lower_is_better_metrics():
    policy = Policy(threshold=10.0, margin=0.5)
    assert decide(policy, "fid", "min", candidate(metric=8.0), 9.0, "1").promote
    assert not decide(policy, "fid", "min", candidate(metric=8.8), 9.0, "1").promote
    assert not decide(policy, "fid", "min", candidate(metric=12.0), None).promote


def test_with_approval_required_a_passing_version_is_a_candidate_not_a_champion():
    gated = Policy(threshold=0.7, margin=0.01, approval="required")
    passing = decide(gated, "accuracy", "max", candidate(0.9), 0.85, "1")
    assert (passing.alias, passing.promote, passing.awaiting_approval) == ("candidate", False, True)
    assert passing.reasons[-1].startswith("awaiting approval")
    failing = decide(gated, "accuracy", "max", candidate(0.855), 0.85, "1")
    assert (failing.alias, failing.awaiting_approval) == ("challenger", False)
    assert decide(POLICY, "accuracy", "max", candidate(0.9), 0.85, "1").alias == "champion"  # the default: none
