"""Model cards: one per registered version, markdown and HTML, with the figures beside them.

A reviewer reads the card before a model goes live, so it holds everything the decision rests
on: data version and validation, metrics against the champion and a trivial baseline on the
same data, the config, the lineage, the decision with its reasons, and the known limitations.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import markdown as md

from zooflow.tasks.base import RunContext

HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}}
img{{max-width:100%}}code,pre{{background:#f4f4f4}}</style></head>
<body>{body}</body></html>
"""


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _baseline_verdict(primary: str, goal: str, ours: float | None, theirs: float | None) -> list[str]:
    """Say plainly when the model loses to the baseline scored on the same data."""
    if ours is None or theirs is None:
        return []
    worse = ours < theirs if goal == "max" else ours > theirs
    if worse:
        return [f"**This model loses to its baseline** on {primary} ({ours:.4f} vs {theirs:.4f}): "
                "prefer the baseline, or find out why, before using it."]
    return [f"The model beats its baseline on {primary} ({ours:.4f} vs {theirs:.4f})."]


def _facts(info: dict) -> str:
    """Short values in full; long ones (a vocabulary) by their size."""
    return ", ".join(f"{key} `{json.dumps(value)}`" if len(json.dumps(value)) < 200 else f"{key} ({len(value)} entries)"
                     for key, value in info.items())


def limitations(ctx: RunContext) -> list[str]:
    """What a reader must know before trusting the numbers."""
    cfg = ctx.cfg
    notes = list(cfg.limitations)
    if cfg.pretrained == "none":
        notes.append("Trained from random initialisation (`pretrained: none`): where the book starts from "
                     "pretrained weights (chapters 1, 7 and 8), scores here are far below what the architecture reaches.")
    if cfg.profile != "book":
        notes.append(f"`{cfg.profile}` profile: smaller than the book's settings ({cfg.epochs} epochs and reduced "
                     "sizes, see the config below); for demonstration and tests, not production.")
    notes.append("Validation metrics come from the dataset's own val split; they say nothing about other "
                 "cameras, populations or classes.")
    return notes


def build_card(ctx: RunContext, *, data: dict, validation: dict, trained: dict, evaluation: dict,
               registered: dict, decision: dict, run_id: str, git: dict, folder: Path) -> Path:
    """Write ``model_card.md`` and ``model_card.html`` into ``folder`` (which holds the figures)."""
    cfg = ctx.cfg
    primary = evaluation["primary_metric"]
    scores, baseline = evaluation["metrics"], evaluation["baseline"]
    champion = evaluation.get("champion_metrics") or {}
    lines = [
        f"# Model card: {registered['name']} v{registered['version']}",
        "",
        f"*{cfg.description}*",
        "",
        f"- **Task**: {cfg.task} - **model**: {cfg.model} ({cfg.architecture}) - **profile**: {cfg.profile}",
        f"- **Decision**: `{decision['alias']}`" + (f" (replaced v{decision['previous_version']})"
                                                   if decision.get("previous_version") and decision["promoted"] else ""),
        f"- **Written**: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "",
        "## Decision and reasons",
        "",
        *[f"- {reason}" for reason in decision["reasons"]],
        "",
        "## Metrics (held-out split)",
        "",
        f"Primary metric: **{primary}** ({evaluation['goal']}). {evaluation['champion_note']}.",
        "",
        "| metric | this version | champion | baseline |",
        "|---|---|---|---|",
        *[f"| {name} | {_fmt(value)} | {_fmt(champion.get(name))} | {_fmt(baseline.get(name))} |"
          for name, value in scores.items()],
        "",
        f"Baseline: {evaluation.get('baseline_note', 'a trivial predictor')}, scored on the same data.",
        "",
        *_baseline_verdict(primary, evaluation["goal"], scores.get(primary), baseline.get(primary)),
        "",
        "## Data",
        "",
        f"- Data version `{data['tag']}` (data.dvc md5 `{data['data_md5']}`, `data/{data['task_folder']}` "
        f"hash `{data['task_md5']}`, {data['files']} files)",
        f"- Facts the model depends on: {_facts(ctx.info)}",
        f"- Validation (Great Expectations): {validation['summary']}",
        "",
        "## Training",
        "",
        f"- Device: {trained['device']}; {trained['train_seconds']} s; "
        + (f"resumed after epoch {trained['resumed_from_epoch']}" if trained["resumed_from_epoch"] else "not resumed"),
        f"- Pretrained weights: `{cfg.pretrained}`",
        "",
        "## Figures",
        "",
        *[f"[{Path(p).stem} (HTML)]({Path(p).name})" if p.endswith(".html") else f"![{Path(p).stem}]({Path(p).name})"
          for p in evaluation["figures"]],
        "",
        "## Lineage",
        "",
        f"- MLflow run `{run_id}`; model URI `{registered['model_uri']}`",
        f"- Git commit `{git.get('git_commit') or 'unknown'}` (uncommitted changes: {git.get('git_dirty')})",
        f"- Config hash `{cfg.digest()}`",
        "",
        "## Known limitations",
        "",
        *[f"- {note}" for note in limitations(ctx)],
        "",
        "## Config",
        "",
        "```json",
        json.dumps(cfg.model_dump(mode="json"), indent=2),
        "```",
        "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (folder / "model_card.md").write_text(text)
    body = md.markdown(text, extensions=["tables", "fenced_code"])
    (folder / "model_card.html").write_text(HTML_PAGE.format(title=f"{registered['name']} v{registered['version']}", body=body))
    return folder / "model_card.md"
