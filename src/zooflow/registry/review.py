"""A person's review of a ``candidate``: the version a task's policy passed but, with
``policy.approval: required``, did not make champion on its own.

Approving moves ``champion`` to it (the old champion becomes ``previous-champion``); rejecting
takes ``candidate`` off it. Either way the version keeps the review (``review.decision``,
``review.reviewer``, ``review.comment``) as tags and the promotion log gets a row of kind
``review`` naming the reviewer. A version is reviewed once, under the same registry lock as
every promotion.
"""

from __future__ import annotations

from dataclasses import dataclass

from zooflow.errors import UserError
from zooflow.registry import tracking, versions

FLOW_RUN_TAG = "review.flow_run"  # on a candidate: the pipeline flow run paused for its review


@dataclass(frozen=True)
class Reviewed:
    name: str
    version: str
    decision: str              # "approved" or "rejected"
    alias: str                 # the version's alias now ("champion", or "" when rejected)
    previous_champion: str | None
    reviewer: str
    comment: str
    flow_run: str | None       # the pipeline flow run paused for this review (policy.approval_wait), if any


def review(name: str, version: str, approve: bool, comment: str, reviewer: str | None = None) -> Reviewed:
    """Approve or reject candidate ``version`` of ``name``; a ``UserError`` naming the version when
    it is no candidate awaiting review (never one, or reviewed already)."""
    if not comment.strip():
        raise UserError("a review needs a comment (--comment): it is what the promotion log keeps of the decision")
    who = reviewer or tracking.who()
    with versions.registry_lock(name):
        ref = versions.get(name, version)
        if ref.tags.get("review.decision"):
            raise UserError(f"{name} v{version} was already {ref.tags['review.decision']} by "
                            f"{ref.tags.get('review.reviewer', '?')}")
        if ref.tags.get("promotion.decision") != versions.CANDIDATE:
            raise UserError(f"{name} v{version} is not a candidate awaiting review (its promotion decision: "
                            f"{ref.tags.get('promotion.decision') or 'none'}); only a version the policy passed "
                            f"with approval required is")
        decision = "approved" if approve else "rejected"
        previous = versions.apply_alias(ref, versions.CHAMPION) if approve else None
        if not approve:
            versions.drop_alias(ref, versions.CANDIDATE)
        alias = versions.CHAMPION if approve else ""
        versions.tag_version(ref, {"review.decision": decision, "review.reviewer": who,
                                   "review.account": tracking.who(), "review.comment": comment,
                                   "promotion.decision": alias or "rejected"})
        versions.log_decision(ref, alias or "rejected", previous, f"review: {decision} by {who}: {comment}", {},
                              kind="review", who=who)
    return Reviewed(name, str(version), decision, alias, previous.version if previous else None, who, comment,
                    ref.tags.get(FLOW_RUN_TAG))
