"""Model cards: one per registered version, markdown and HTML, with the figures beside them.

A reviewer reads the card before a model goes live, so it holds everything the decision rests
on: data version and validation, metrics against the champion and a trivial baseline on the
same data, the config, the lineage, the decision with its reasons, and the known limitations.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path
from urllib.parse import quote

import markdown as md
from markdown.treeprocessors import Treeprocessor

from zooflow.tasks.base import RunContext

HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}}
img{{max-width:100%}}code,pre{{background:#f4f4f4}}</style></head>
<body>{body}</body></html>
"""


# Link targets a card may point at: its own files (relative), the web and mail. Images only
# relative: a card shows its own figures and never fetches from elsewhere when it is opened.
SAFE_LINK_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
# Browsers drop ASCII whitespace and control characters inside a URL ("java\tscript:").
_IGNORED_IN_URLS = re.compile(r"[\x00-\x20\x7f]")


def _scheme(url: str) -> str | None:
    """The URL's scheme as a browser reads it, or None for a relative URL."""
    found = _SCHEME.match(_IGNORED_IN_URLS.sub("", url).lower())
    return found.group(1) if found else None


class _SafeLinks(Treeprocessor):
    """Drops link targets outside SAFE_LINK_SCHEMES (``javascript:``, ``data:``, ...) and image
    sources that are not relative; the link text or image alt text stays."""

    def run(self, root):
        for element in root.iter():
            for attribute, allowed in (("href", SAFE_LINK_SCHEMES), ("src", ())):
                value = element.get(attribute)
                if value is not None and _scheme(value) not in (None, *allowed):
                    del element.attrib[attribute]
                elif value is not None and attribute == "src" and value.strip().replace("\\", "/").startswith("//"):
                    del element.attrib[attribute]  # scheme-relative: another host after all
        return None


def render_html(text: str) -> str:
    """The card's markdown as HTML in which nothing from the text becomes markup of its own.

    python-markdown passes raw HTML through by design; here its block and inline HTML handlers
    are removed, so ``<script>`` or ``<img onerror=...>`` anywhere in the text (a class name, a
    description, a metric name) is escaped and shows as text, and unsafe link targets go.
    """
    converter = md.Markdown(extensions=["tables", "fenced_code"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    converter.treeprocessors.register(_SafeLinks(converter), "safe_links", 5)  # after "inline" (20) made the links
    return converter.convert(text)


def _one_line(value) -> str:
    """A user string on one line (a newline would end a list item or a table row)."""
    return " ".join(str(value).split())


def _code(value) -> str:
    """``value`` as an inline code span: shown literally (no emphasis, links or images), with a
    fence longer than any run of backticks inside so the value cannot close it."""
    text = _one_line(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(value) -> str:
    """A user string inside a table cell: one line, its pipes escaped so columns stay put."""
    return _one_line(value).replace("|", "\\|")


def _fenced(text: str, language: str = "") -> list[str]:
    """A fenced block whose fence is longer than any backtick run in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text, fence]


def _figure(path: str) -> str:
    """A figure beside the card: an image, or a link for an HTML figure. The file name is
    percent-encoded as the target (a space or bracket in it cannot end the link early)."""
    name, stem = Path(path).name, _cell(Path(path).stem).replace("[", "\\[").replace("]", "\\]")
    if name.endswith(".html"):
        return f"[{stem} (HTML)]({quote(name)})"
    return f"![{stem}]({quote(name)})"


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
    return ", ".join(f"{_one_line(key)} {_code(json.dumps(value, ensure_ascii=False))}" if len(json.dumps(value)) < 200
                     else f"{_one_line(key)} ({len(value)} entries)" for key, value in info.items())


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
        f"# Model card: {_one_line(registered['name'])} v{_one_line(registered['version'])}",
        "",
        f"*{_one_line(cfg.description)}*" if cfg.description.strip() else "",
        "",
        f"- **Task**: {_code(cfg.task)} - **model**: {_code(cfg.model)} ({_code(cfg.architecture)}) "
        f"- **profile**: {_code(cfg.profile)}",
        f"- **Decision**: {_code(decision['alias'])}" + (f" (replaced v{decision['previous_version']})"
                                                   if decision.get("previous_version") and decision["promoted"] else ""),
        f"- **Written**: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "",
        "## Decision and reasons",
        "",
        *[f"- {_one_line(reason)}" for reason in decision["reasons"]],
        "",
        "## Metrics (held-out split)",
        "",
        f"Primary metric: **{_code(primary)}** ({evaluation['goal']}). {_one_line(evaluation['champion_note'])}.",
        "",
        "| metric | this version | champion | baseline |",
        "|---|---|---|---|",
        *[f"| {_cell(name)} | {_fmt(value)} | {_fmt(champion.get(name))} | {_fmt(baseline.get(name))} |"
          for name, value in scores.items()],
        "",
        f"Baseline: {_one_line(evaluation.get('baseline_note', 'a trivial predictor'))}, scored on the same data.",
        "",
        *_baseline_verdict(primary, evaluation["goal"], scores.get(primary), baseline.get(primary)),
        "",
        "## Data",
        "",
        f"- Data version {_code(data['tag'])} (data.dvc md5 {_code(data['data_md5'])}, "
        f"{_code('data/' + str(data['task_folder']))} hash {_code(data['task_md5'])}, {_one_line(data['files'])} files)",
        f"- Facts the model depends on: {_facts(ctx.info)}",
        f"- Validation (Great Expectations): {_one_line(validation['summary'])}",
        "",
        "## Training",
        "",
        f"- Device: {_code(trained['device'])}; {_one_line(trained['train_seconds'])} s; "
        + (f"resumed after epoch {trained['resumed_from_epoch']}" if trained["resumed_from_epoch"] else "not resumed"),
        f"- Pretrained weights: {_code(cfg.pretrained)}",
        "",
        "## Figures",
        "",
        *[_figure(path) for path in evaluation["figures"]],
        "",
        "## Lineage",
        "",
        f"- MLflow run {_code(run_id)}; model URI {_code(registered['model_uri'])}",
        f"- Git commit {_code(git.get('git_commit') or 'unknown')} (uncommitted changes: {_one_line(git.get('git_dirty'))})",
        f"- Config hash {_code(cfg.digest())}",
        "",
        "## Known limitations",
        "",
        *[f"- {_one_line(note)}" for note in limitations(ctx)],
        "",
        "## Config",
        "",
        *_fenced(json.dumps(cfg.model_dump(mode="json"), indent=2, ensure_ascii=False), "json"),
        "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (folder / "model_card.md").write_text(text)
    title = html.escape(f"{registered['name']} v{registered['version']}")
    (folder / "model_card.html").write_text(HTML_PAGE.format(title=title, body=render_html(text)))
    return folder / "model_card.md"
