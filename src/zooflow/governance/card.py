"""Model cards: one per registered version, markdown and HTML, with the figures beside them.

The markdown card links its figures by relative path (right for a downloaded copy of the card
folder). The HTML card carries its figures inside itself, because reviewers open it where
relative links resolve to nothing: the MLflow UI shows an HTML artifact from a blob URL in a
sandboxed iframe, and Prefect shows the card as an artifact of its own. PNG figures become
``data:image/png;base64`` images; an HTML figure (the sentiment task's attention page) becomes a
``srcdoc`` iframe with an empty ``sandbox`` (no scripts, no same-origin access).

A reviewer reads the card before a model goes live, so it holds everything the decision rests
on: data version and validation, metrics against the champion and a trivial baseline on the
same data, the config, the lineage, the decision with its reasons, and the known limitations.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from pathlib import Path
from urllib.parse import quote

import markdown as md
from markdown.treeprocessors import Treeprocessor
from xml.etree import ElementTree as etree

from zooflow.data.store import DataVersion
from zooflow.evaluation import baselines as named_baselines
from zooflow.step_results import Evaluation, Promotion, Registered, Trained, Validated
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


class _EmbedFigures(Treeprocessor):
    """Swaps the card's own figure links for the figures themselves. It runs after _SafeLinks, so
    the data URIs it writes are the only ones in the page: it matches the exact relative targets
    the card wrote for files the card itself read, never a URL taken from the text."""

    def __init__(self, converter, images: dict[str, str], pages: dict[str, str]):
        super().__init__(converter)
        self.images, self.pages = images, pages  # relative target -> data URI / HTML text

    def run(self, root):
        for parent in list(root.iter()):
            for position, element in reversed(list(enumerate(parent))):
                if element.tag == "img" and element.get("src") in self.images:
                    element.set("src", self.images[element.get("src")])
                elif element.tag == "a" and element.get("href") in self.pages:
                    # The link would point at nothing in the MLflow view: show the page inline.
                    parent.insert(position + 1, _sandboxed_frame(self.pages.pop(element.get("href"))))
                    del element.attrib["href"]
        return None


def _sandboxed_frame(page: str) -> etree.Element:
    """An iframe showing ``page`` with every sandbox restriction on (no scripts, forms, popups or
    same-origin access); the serializer escapes the attribute, so the page cannot leave it."""
    # The serializer leaves "&lt;" alone as an entity, and the browser would decode it into a
    # real "<" inside the frame: every "&" is doubled first so the frame sees the page's own text.
    frame = etree.Element("iframe", {"sandbox": "", "srcdoc": page.replace("&", "&amp;"), "title": "figure",
                                     "style": "width:100%;height:24rem;border:1px solid #ccc"})
    frame.tail = "\n"
    return frame


def png_data_uri(path: Path) -> str | None:
    """A PNG file as a ``data:image/png;base64`` URI, or None when the file is not a PNG."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):  # the name alone proves nothing
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def embedded_figures(figures: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """For each figure that exists: its relative target in the markdown card, mapped to a data URI
    (PNG) or to its HTML text (an HTML figure). Missing files keep their relative link."""
    images, pages = {}, {}
    for figure in map(Path, figures):
        if not figure.is_file():
            continue
        if figure.suffix == ".html":
            pages[quote(figure.name)] = figure.read_text(encoding="utf-8", errors="replace")
        elif (uri := png_data_uri(figure)) is not None:
            images[quote(figure.name)] = uri
    return images, pages


def render_html(text: str, images: dict[str, str] | None = None, pages: dict[str, str] | None = None) -> str:
    """The card's markdown as HTML in which nothing from the text becomes markup of its own.

    python-markdown passes raw HTML through by design; here its block and inline HTML handlers
    are removed, so ``<script>`` or ``<img onerror=...>`` anywhere in the text (a class name, a
    description, a metric name) is escaped and shows as text, and unsafe link targets go.
    ``images`` / ``pages`` (from :func:`embedded_figures`) put the card's own figures inline,
    after that clean-up.
    """
    converter = md.Markdown(extensions=["tables", "fenced_code"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    converter.treeprocessors.register(_SafeLinks(converter), "safe_links", 5)  # after "inline" (20) made the links
    if images or pages:
        # priority 4: after safe_links (a lower priority runs later)
        converter.treeprocessors.register(_EmbedFigures(converter, dict(images or {}), dict(pages or {})),
                                          "embed_figures", 4)
    return converter.convert(text)


def _one_line(value) -> str:
    """A user string on one line (a newline would end a list item or a table row)."""
    return " ".join(str(value).split())


def md_code(value) -> str:
    """``value`` as an inline code span: shown literally (no emphasis, links or images), with a
    fence longer than any run of backticks inside so the value cannot close it."""
    text = _one_line(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_cell(value) -> str:
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
    name, stem = Path(path).name, md_cell(Path(path).stem).replace("[", "\\[").replace("]", "\\]")
    if name.endswith(".html"):
        return f"[{stem} (HTML)]({quote(name)})"
    return f"![{stem}]({quote(name)})"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _baseline_verdict(primary: str, goal: str, ours: float | None, theirs: float | None, name: str = "") -> list[str]:
    """Say plainly when the model loses to a baseline scored on the same data (``name``: which
    one, for a task with several)."""
    if ours is None or theirs is None:
        return []
    worse = ours < theirs if goal == "max" else ours > theirs
    if worse and name:
        return [f"**The {md_code(name)} baseline scores {'higher' if goal == 'max' else 'lower'} {primary} than this "
                f"model** ({theirs:.4f} vs {ours:.4f}): the model is not worth its cost on this data; prefer the "
                "baseline, or find out why, before using it."]
    if worse:
        return [f"**This model loses to its baseline** on {primary} ({ours:.4f} vs {theirs:.4f}): "
                "prefer the baseline, or find out why, before using it."]
    which = f"the {md_code(name)} baseline" if name else "its baseline"
    return [f"The model beats {which} on {primary} ({ours:.4f} vs {theirs:.4f})."]


def _baseline_lines(evaluation: Evaluation) -> tuple[list[str], list[dict], list[str]]:
    """The baselines' table headers, their metrics (one dict per column) and the sentences
    under the table: what each baseline is, and whether the model beats it."""
    found = named_baselines.named(evaluation.baseline, evaluation.baseline_note or "a trivial predictor")
    primary, goal, ours = evaluation.primary_metric, evaluation.goal, evaluation.metrics.get(evaluation.primary_metric)
    headers, columns, text = [], [], []
    for name, (note, metrics) in found.items():
        headers.append(f"baseline {md_cell(name)}" if name else "baseline")
        columns.append(metrics)
        label = f"Baseline {md_code(name)}" if name else "Baseline"
        text += [f"{label}: {_one_line(note)}, scored on the same data.", ""]
    for name, (_, metrics) in found.items():
        text += _baseline_verdict(primary, goal, ours, metrics.get(primary), name)
    return headers, columns, text


def _facts(info: dict) -> str:
    """Short values in full; long ones (a vocabulary) by their size."""
    return ", ".join(f"{_one_line(key)} {md_code(json.dumps(value, ensure_ascii=False))}" if len(json.dumps(value)) < 200
                     else f"{_one_line(key)} ({len(value)} entries)" for key, value in info.items())


def limitations(ctx: RunContext, book_pretrained: str | None = None) -> list[str]:
    """What a reader must know before trusting the numbers. ``book_pretrained``: the ``pretrained``
    of the model's ``book`` profile when the run started (``config.book_pretrained``)."""
    cfg = ctx.cfg
    notes = list(cfg.limitations)
    if cfg.pretrained == "none" and book_pretrained not in (None, "none"):
        # Only a model the book starts from pretrained weights loses by starting from scratch;
        # the GANs (chapters 5 and 6) are trained from random initialisation by the book too.
        notes.append(f"Trained from random initialisation (`pretrained: none`) where the book starts from "
                     f"pretrained weights ({md_code(book_pretrained)} in the `book` profile): scores here are far below "
                     "what the architecture reaches.")
    if cfg.profile != "book":
        notes.append(f"`{cfg.profile}` profile: smaller than the book's settings ({cfg.epochs} epochs and reduced "
                     "sizes, see the config below); for demonstration and tests, not production.")
    notes.append("The metrics come from this dataset's own held-out split; they say nothing about data from "
                 "other sources, populations or classes.")
    return notes


def build_card(ctx: RunContext, *, data: DataVersion, validation: Validated, trained: Trained,
               evaluation: Evaluation, registered: Registered, decision: Promotion, run_id: str, git: dict, folder: Path,
               overrides: dict | None = None, book_pretrained: str | None = None) -> Path:
    """Write ``model_card.md`` and ``model_card.html`` into ``folder`` (which holds the figures).
    ``overrides``: what the run changed of its task file (``--set``, ``--seed``);
    ``book_pretrained``: see ``limitations``."""
    cfg = ctx.cfg
    primary = evaluation.primary_metric
    scores = evaluation.metrics
    baseline_headers, baseline_columns, baseline_text = _baseline_lines(evaluation)
    champion = evaluation.champion_metrics or {}
    lines = [
        f"# Model card: {_one_line(registered.name)} v{_one_line(registered.version)}",
        "",
        f"*{_one_line(cfg.description)}*" if cfg.description.strip() else "",
        "",
        f"- **Task**: {md_code(cfg.task)} - **model**: {md_code(cfg.model)} ({md_code(cfg.architecture)}) "
        f"- **profile**: {md_code(cfg.profile)}",
        f"- **Decision**: {md_code(decision.alias)}" + (f" (replaced v{decision.previous_version})"
                                                   if decision.previous_version and decision.promoted else ""),
        f"- **Written**: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "",
        "## Decision and reasons",
        "",
        *[f"- {_one_line(reason)}" for reason in decision.reasons],
        "",
        "## Metrics (held-out split)",
        "",
        f"Primary metric: **{md_code(primary)}** ({evaluation.goal}). {_one_line(evaluation.champion_note)}.",
        "",
        "| metric | this version | champion | " + " | ".join(baseline_headers) + " |",
        "|---|---|---|" + "---|" * len(baseline_headers),
        *[f"| {md_cell(name)} | {_fmt(value)} | {_fmt(champion.get(name))} | "
          + " | ".join(_fmt(column.get(name)) for column in baseline_columns) + " |"
          for name, value in scores.items()],
        "",
        *baseline_text,
        "",
        "## Data",
        "",
        f"- Data version {md_code(data.tag)} (data.dvc md5 {md_code(data.data_md5)}, "
        f"{md_code('data/' + str(data.task_folder))} hash {md_code(data.task_md5)}, {_one_line(data.files)} files)",
        f"- Facts the model depends on: {_facts(ctx.info)}",
        f"- Validation (Great Expectations): {_one_line(validation.summary)}",
        "",
        "## Training",
        "",
        f"- Device: {md_code(trained.device)}; {_one_line(trained.train_seconds)} s; "
        + (f"resumed after epoch {trained.resumed_from_epoch}" if trained.resumed_from_epoch else "not resumed"),
        f"- Pretrained weights: {md_code(cfg.pretrained)}",
        "- Overrides of the task file: " + (", ".join(md_code(f"{key}={json.dumps(value)}")
                                                       for key, value in sorted(overrides.items()))
                                             if overrides else "none"),
        "",
        "## Figures",
        "",
        *[_figure(path) for path in evaluation.figures],
        "",
        "## Lineage",
        "",
        f"- MLflow run {md_code(run_id)}; model URI {md_code(registered.model_uri)}",
        f"- Git commit {md_code(git.get('git_commit') or 'unknown')} (uncommitted changes: {_one_line(git.get('git_dirty'))})",
        f"- Config hash {md_code(cfg.digest())}",
        "",
        "## Known limitations",
        "",
        *[f"- {_one_line(note)}" for note in limitations(ctx, book_pretrained)],
        "",
        "## Config",
        "",
        *_fenced(json.dumps(cfg.model_dump(mode="json"), indent=2, ensure_ascii=False), "json"),
        "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (folder / "model_card.md").write_text(text)
    title = html.escape(f"{registered.name} v{registered.version}")
    images, pages = embedded_figures(evaluation.figures)
    (folder / "model_card.html").write_text(HTML_PAGE.format(title=title, body=render_html(text, images, pages)))
    return folder / "model_card.md"


def artifact_markdown(text: str, figures: list[str], run_id: str) -> str:
    """The markdown card for Prefect's UI, which shows an artifact on its own (relative links
    lead nowhere there): PNG figures become data URIs, which both Prefect 3.9 UIs keep in an
    image source (the v2 UI allows exactly ``data:image/`` there); an HTML figure, which Prefect
    would sanitise away, is named with the MLflow run that holds it.

    Only the lines of the "Figures" section that the card itself wrote are replaced, so nothing
    in a user string can become a data URI.
    """
    images, pages = embedded_figures(figures)
    replacements = {}
    for figure in map(Path, figures):
        target = quote(figure.name)
        if target in images:
            replacements[_figure(str(figure))] = _figure(str(figure)).replace(f"]({target})", f"]({images[target]})")
        elif target in pages:
            replacements[_figure(str(figure))] = (f"{md_cell(figure.stem)} (HTML): artifact {md_code('card/' + figure.name)} "
                                                  f"of MLflow run {md_code(run_id)}")
    lines, in_figures = [], False
    for line in text.split("\n"):
        if line.startswith("## "):
            in_figures = line == "## Figures"
        lines.append(replacements.get(line, line) if in_figures else line)
    return "\n".join(lines)
