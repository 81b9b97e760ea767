"""The promotion policy as a pure function: given a candidate's facts, the champion's score on
the same data and the task's policy, decide ``champion`` or ``challenger`` and say why."""

from __future__ import annotations

from dataclasses import dataclass, field

from zooflow.config import Policy

# A model version without these cannot be traced back to its code, data and config.
LINEAGE_KEYS = ("run_id", "git_commit", "data_version", "config_hash")
# The device tag of an ``epochs: 0`` run: pretrained weights evaluated as they are.
NOT_TRAINED = "none (not trained: pretrained weights evaluated as they are)"


@dataclass(frozen=True)
class Candidate:
    metric: float
    validation_passed: bool
    lineage: dict[str, str]
    profile: str
    device: str  # "cpu", "cuda:<name>" or NOT_TRAINED


@dataclass(frozen=True)
class Decision:
    """``promote``: the version becomes champion now. ``awaiting_approval``: it passed every
    check, and the policy wants a person to approve it first (alias ``candidate``)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    awaiting_approval: bool = False

    @property
    def alias(self) -> str:
        if self.awaiting_approval:
            return "candidate"
        return "champion" if self.promote else "challenger"

    def text(self) -> str:
        return "; ".join(self.reasons)


def decide(policy: Policy, metric_name: str, goal: str, candidate: Candidate,
           champion_metric: float | None, champion_version: str | None = None) -> Decision:
    """Every check is run and reported, passed (``ok``) or not (``FAIL``), so the decision tag
    tells the whole story. A tie with the champion is not a win, whatever the margin."""
    sign = 1 if goal == "max" else -1
    checks: list[tuple[bool, str]] = []
    reaches = sign * (candidate.metric - policy.threshold) >= 0
    checks.append((reaches, f"{metric_name} {candidate.metric:.4f} {'>=' if goal == 'max' else '<='} "
                            f"threshold {policy.threshold:.4f}" if reaches else
                            f"{metric_name} {candidate.metric:.4f} misses threshold {policy.threshold:.4f}"))
    if champion_metric is None:
        checks.append((True, "no current champion"))
    else:
        gain = sign * (candidate.metric - champion_metric)
        wins = gain > 0 and gain >= policy.margin
        checks.append((wins, f"{'beats' if wins else 'does not beat'} champion v{champion_version} "
                             f"({champion_metric:.4f} on the same data) by {gain:+.4f} (margin {policy.margin:.4f})"))
    checks.append((candidate.validation_passed,
                   "data validation passed" if candidate.validation_passed else "data validation failed"))
    missing = [key for key in LINEAGE_KEYS if not candidate.lineage.get(key)]
    checks.append((not missing, "lineage complete" if not missing else f"lineage incomplete: no {', '.join(missing)}"))
    if candidate.profile in policy.gpu_required_profiles and candidate.device == NOT_TRAINED:
        # the rule is about how a book-sized model was trained; this one was not trained here
        checks.append((True, f"{candidate.profile} profile not trained (epochs 0): no GPU needed"))
    elif candidate.profile in policy.gpu_required_profiles:
        on_gpu = candidate.device.startswith("cuda")
        checks.append((on_gpu, f"{candidate.profile} profile trained on {candidate.device}"
                               + ("" if on_gpu else " (the policy requires a GPU)")))
    passes = all(ok for ok, _ in checks)
    reasons = [f"{'ok' if ok else 'FAIL'}: {why}" for ok, why in checks]
    if passes and policy.approval == "required":
        return Decision(promote=False, awaiting_approval=True,
                        reasons=reasons + ["awaiting approval: the policy requires a person to approve a new "
                                           "champion (zooflow review)"])
    return Decision(promote=passes, reasons=reasons)
