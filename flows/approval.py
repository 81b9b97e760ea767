"""The pipeline flow waiting for a person's review of its candidate (``policy.approval:
required`` with ``policy.approval_wait: SECONDS``).

The flow pauses with Prefect's ``pause_flow_run`` and a typed input (``ReviewInput``), so the
Prefect UI shows a form to approve or reject. Whichever way the answer comes, the decision is
``registry.review.review`` (the same code as ``zooflow review``):

- Prefect UI: the paused flow run's "Resume" form, or programmatically
  ``prefect.flow_runs.resume_flow_run(FLOW_RUN_ID, run_input={"approve": True, "reviewer": "...",
  "comment": "..."})``: the flow records the review itself.
- ``zooflow review NAME VERSION --approve|--reject --comment ...``: the CLI records the review and
  then resumes the flow run that waits for it (named by the version's ``review.flow_run`` tag); the flow
  finds the review made and reports it.

When the wait ends without an answer the version stays ``candidate`` (reviewable later with
``zooflow review``) and the flow completes saying so.
"""

from __future__ import annotations

import logging
from uuid import UUID

from pydantic import Field

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running

from zooflow.registry import review, versions
from zooflow.step_results import Registered

log = logging.getLogger("zooflow")

POLL_SECONDS = 2                  # how soon a paused flow notices it was resumed


class ReviewInput(RunInput):
    """What a reviewer answers (the Prefect UI's resume form shows these fields)."""

    approve: bool = Field(description="true: the candidate becomes champion; false: it is rejected")
    reviewer: str = Field(pattern=r"\S", description="who reviews (kept in the promotion log)")
    comment: str = Field(pattern=r"\S", description="why (kept in the promotion log)")


def await_review(registered: Registered, wait_seconds: int) -> dict[str, str]:
    """Pause the current flow run up to ``wait_seconds`` for the review of candidate
    ``registered``; returns the summary row's new fields: ``alias`` (champion, rejected or still
    candidate) and ``review`` (what happened, in words)."""
    flow_run_id = FlowRunContext.get().flow_run.id
    name, version = registered.name, registered.version
    versions.tag_version(versions.get(name, version), {review.FLOW_RUN_TAG: str(flow_run_id)})
    log.info("%s v%s is a candidate awaiting review; this flow run (%s) pauses for up to %d s. Resume it with "
             "`zooflow review %s %s --approve|--reject --comment \"...\"`, with the Resume form of the flow run "
             "in the Prefect UI, or with prefect.flow_runs.resume_flow_run(\"%s\", run_input={\"approve\": True, "
             "\"reviewer\": \"...\", \"comment\": \"...\"})", name, version, flow_run_id, wait_seconds,
             name, version, flow_run_id)
    try:
        answer = pause_flow_run(wait_for_input=ReviewInput, timeout=wait_seconds, poll_interval=POLL_SECONDS)
    except FlowPauseTimeout:
        answer = None
        _carry_on(flow_run_id)
    reviewed = versions.get(name, version).tags
    if reviewed.get("review.decision"):  # `zooflow review` made it, then resumed this run (or it came late)
        decision = reviewed["review.decision"]
        outcome = f"{decision} by {reviewed.get('review.reviewer', '?')} (zooflow review)"
    elif answer is None:
        log.info("%s v%s: no review within %d s; it stays candidate (`zooflow review %s %s` decides later)",
                 name, version, wait_seconds, name, version)
        return {"alias": versions.CANDIDATE, "review": f"no review within {wait_seconds} s: stays candidate"}
    else:
        decision = review.review(name, version, answer.approve, answer.comment, answer.reviewer).decision
        outcome = f"{decision} by {answer.reviewer}"
    alias = versions.CHAMPION if decision == "approved" else "rejected"
    log.info("%s v%s %s -> %s", name, version, outcome, alias)
    return {"alias": alias, "review": outcome}


def _carry_on(flow_run_id: UUID) -> None:
    """After a pause that timed out the server refuses every move out of Paused but to Failed;
    an unanswered review is no failure, so the run is set Running again (forced) and completes.
    A run someone cancelled meanwhile is no longer Paused and is left as it is."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_paused():
            client.set_flow_run_state(flow_run_id, Running(), force=True)


def resume_waiting_flow(done: review.Reviewed) -> str:
    """After ``zooflow review`` recorded ``done``: resume the flow run paused for that review, if
    one still waits on the Prefect API this process talks to; a sentence saying what happened
    (empty when nothing waits any more). The review stands whatever happens here."""
    import httpx
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL

    if not done.flow_run:
        return ""
    if not PREFECT_API_URL.value():
        return (f"flow run {done.flow_run} may still wait for this review: without PREFECT_API_URL it cannot be "
                f"reached; it reports the review when its wait ends")
    try:
        resume_flow_run(UUID(done.flow_run), run_input={"approve": done.decision == "approved",
                                                        "reviewer": done.reviewer, "comment": done.comment})
    except (NotPausedError, FlowPauseTimeout, ObjectNotFound):
        return ""  # it finished, timed out or was deleted: nobody waits
    except (httpx.HTTPError, RuntimeError) as error:
        return f"flow run {done.flow_run} could not be resumed ({error}); it reports the review when its wait ends"
    return f"resumed flow run {done.flow_run}, which waited for this review"
