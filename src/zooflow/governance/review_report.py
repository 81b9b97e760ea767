"""The review report: what a governance meeting reads before a model goes live.

One model's champion beside its candidate (the version with alias ``candidate``, else the
newest version that is not the champion): metrics on the same data, the baseline, the data
versions and what changed between them, the config and code that changed, links to both
cards, and every promotion decision and review so far. Nothing is retrained or re-scored here:
every figure is what the runs and the registry recorded (the candidate's run re-scored the
champion on its own held-out data when it was evaluated, ``steps.evaluate``).

Written twice from one markdown text: ``.md`` and ``.html`` (the HTML is that markdown
rendered the card's way, so a value from a user, e.g. a review comment, never becomes markup).
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from zooflow import settings
from zooflow.data import store
from zooflow.errors import UserError
from zooflow.registry import tracking, versions

# The card's markdown helpers (escaping included): a report is read where a card is.
from zooflow.governance.card import HTML_PAGE, md_cell, md_code, render_html

CARD = "card/model_card.html"
LOCAL_UI = "http://127.0.0.1:5000"  # where `zooflow ui` serves a local store
MAX_COMMITS = 50                    # more commits than this between two versions is listed by count


@dataclass(frozen=True)
class Side:
    """One of the two versions, with the run that trained it."""

    role: str                 # "champion" or "candidate"
    ref: versions.VersionRef
    metrics: dict[str, float]
    tags: dict[str, str]      # the run's tags
    config: dict | None       # the run's resolved config (None when the run did not log one)
    card_artifact: str        # where the HTML card is stored
    card_ui: str              # the card in the MLflow UI

    @property
    def label(self) -> str:
        return f"v{self.ref.version}"


@dataclass(frozen=True)
class DataChange:
    """What changed in a task's data folder from the champion's data to the candidate's:
    (folder, added, removed, modified) per folder that changed (a class, in an ImageFolder), or
    a note saying why it cannot be counted."""

    folder: str
    rows: list[tuple[str, int, int, int]]
    note: str


def choose(name: str, candidate: str | None = None) -> tuple[versions.VersionRef, versions.VersionRef]:
    """The champion and the candidate of ``name`` (``candidate``: a version number chosen by
    the reader); a ``UserError`` saying which is missing."""
    versions.require_model(name)
    champion = versions.by_alias(name, versions.CHAMPION)
    if champion is None:
        raise UserError(f"{name} has no champion: a review report compares a candidate with the champion it "
                        f"would replace (see `zooflow history {name}`)")
    if candidate is not None:
        try:
            chosen = versions.get(name, candidate)
        except LookupError as error:
            raise UserError(str(error)) from None
    else:
        chosen = versions.by_alias(name, versions.CANDIDATE) or _newest_other(name, champion.version)
    if chosen is None:
        raise UserError(f"{name} has no candidate: its only version is the champion v{champion.version}")
    if chosen.version == champion.version:
        raise UserError(f"{name} v{chosen.version} is the champion itself: choose another --candidate")
    return champion, chosen


def _newest_other(name: str, champion_version: str) -> versions.VersionRef | None:
    found = [mv for mv in tracking.connect().search_model_versions(f"name = '{name}'")
             if str(mv.version) != champion_version]
    newest = max(found, key=lambda mv: int(mv.version), default=None)
    return versions.get(name, newest.version) if newest else None


def side(role: str, ref: versions.VersionRef) -> Side:
    """What the report shows of one version, read from its run."""
    import mlflow

    client = tracking.connect()
    run = client.get_run(ref.run_id)
    try:
        config = mlflow.artifacts.load_dict(f"runs:/{ref.run_id}/config/resolved_config.json")
    except Exception:  # noqa: BLE001 - a run from before configs were logged, or a store without it
        config = None
    uri = settings.tracking_uri()
    ui = uri.rstrip("/") if tracking.is_server(uri) else LOCAL_UI
    return Side(role, ref, dict(run.data.metrics), dict(run.data.tags), config,
                card_artifact=f"{run.info.artifact_uri}/{CARD}",
                card_ui=f"{ui}/#/experiments/{run.info.experiment_id}/runs/{ref.run_id}/artifacts/{CARD}")


def rescored_version(candidate: Side) -> str | None:
    """The champion version the candidate's run re-scored on its data (its tag, or for runs
    that predate the tag, the version named in the policy's reasons)."""
    if not any(key.startswith("champion.") for key in candidate.metrics):
        return None
    if candidate.tags.get("champion_rescored_version"):
        return candidate.tags["champion_rescored_version"]
    found = re.search(r"champion v(\d+)", candidate.ref.tags.get("promotion.reasons", ""))
    return found.group(1) if found else None


def metric_rows(champion: Side, candidate: Side) -> tuple[list[dict], list[str], str]:
    """One row per metric of the candidate: candidate, champion re-scored on the candidate's
    data (only when the re-scored version is this champion), the champion as registered (on its
    own data), and each baseline on the candidate's data. Also the baselines' names and a note
    on where the champion's figures come from."""
    primary = candidate.ref.tags.get("primary_metric", "")
    names = sorted((key.removeprefix("val.") for key in candidate.metrics if key.startswith("val.")),
                   key=lambda name: (name != primary, name))
    baselines = _baseline_names(candidate.metrics, names)
    rescored = rescored_version(candidate)
    same = rescored == champion.ref.version
    if same:
        note = (f"The champion {champion.label} was re-scored by the candidate's run on the candidate's held-out "
                f"data: those two columns compare the same data.")
    elif rescored:
        note = (f"The candidate's run re-scored v{rescored} (the champion then), not the current champion "
                f"{champion.label}: no figures of {champion.label} on the candidate's data were recorded.")
    else:
        note = ("The candidate's run recorded no re-score of a champion (there was none, or its classes differed): "
                "only the champion's figures on its own data are shown.")
    rows = []
    for name in names:
        row = {"metric": name, "primary": name == primary, "candidate": candidate.metrics.get(f"val.{name}"),
               "champion_same_data": candidate.metrics.get(f"champion.{name}") if same else None,
               "champion_own_data": champion.metrics.get(f"val.{name}"),
               "baselines": [candidate.metrics.get(f"baseline.{base}.{name}" if base else f"baseline.{name}")
                             for base in baselines]}
        rows.append(row)
    return rows, baselines, note


def _baseline_names(metrics: dict[str, float], names: list[str]) -> list[str]:
    """The names of a run's baselines: ``baseline.<name>.<metric>`` keys (``evaluation.baselines``),
    or ``[""]`` for a task with one baseline (``baseline.<metric>``)."""
    named = {key.removeprefix("baseline.").removesuffix(f".{name}") for key in metrics for name in names
             if key.startswith("baseline.") and key.endswith(f".{name}") and key != f"baseline.{name}"}
    return sorted(named) or [""]


def data_change(root: Path, folder: str, older: Side, newer: Side) -> DataChange:
    """Files added, removed and modified per folder of ``data/<folder>`` from ``older``'s data
    version to ``newer``'s, from DVC's listings of both (the ``.dir`` objects in the cache or a
    local remote); a plain note when one listing is not on this machine."""
    old_md5, new_md5 = older.ref.tags.get("task_data_md5", ""), newer.ref.tags.get("task_data_md5", "")
    if old_md5 and old_md5 == new_md5:
        return DataChange(folder, [], f"Both versions were trained on the same data of data/{folder}.")
    files = {}
    for version in (older, newer):
        data_md5 = version.ref.tags.get("data_md5", "")
        entries = store.listing_at(root, data_md5) if data_md5 else None
        if entries is None:
            return DataChange(folder, [], (
                f"DVC's listing of the data {version.label} was trained on ({data_md5 or 'not recorded'}) is not "
                f"available here (neither in the DVC cache under {root / '.dvc' / 'cache'} nor in a remote on this "
                f"machine), so the files added or removed cannot be counted. `git checkout <that commit> -- "
                f"data.dvc && dvc fetch` brings it."))
        files[version.role] = store.files_in(entries, folder)
    before, after = files[older.role], files[newer.role]
    counts = {kind: Counter(posixpath.dirname(path) or "." for path in paths) for kind, paths in (
        ("added", after.keys() - before.keys()), ("removed", before.keys() - after.keys()),
        ("modified", {path for path in before.keys() & after.keys() if before[path] != after[path]}))}
    groups = sorted(set().union(*counts.values()))
    rows = [(group, counts["added"][group], counts["removed"][group], counts["modified"][group]) for group in groups]
    totals = f"{len(before)} files in {older.label}'s data, {len(after)} in {newer.label}'s"
    return DataChange(folder, rows, totals + ("." if rows else "; no file differs."))


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, ensure_ascii=False)
    return flat


def config_diff(older: Side, newer: Side) -> tuple[list[tuple[str, str, str]], str]:
    """Each config key whose value differs (key, older's value, newer's value; "-" when absent)."""
    if older.config is None or newer.config is None:
        missing = " and ".join(side.label for side in (older, newer) if side.config is None)
        return [], f"The run of {missing} logged no resolved config: nothing to compare."
    a, b = _flat(older.config), _flat(newer.config)
    rows = [(key, a.get(key, "-"), b.get(key, "-")) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)]
    return rows, "" if rows else "The resolved configs are the same."


def code_diff(root: Path, older: Side, newer: Side) -> tuple[list[str], str]:
    """``git log --oneline older..newer`` when this checkout has both commits, else a note."""
    a, b = older.ref.tags.get("git_commit", ""), newer.ref.tags.get("git_commit", "")
    if not a or not b:
        return [], "A version has no git commit recorded: the code cannot be compared."
    if a == b:
        return [], "Both versions were trained from the same commit."

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    if any(git("cat-file", "-e", f"{commit}^{{commit}}").returncode for commit in (a, b)):
        return [], f"This checkout ({root}) does not hold both commits: `git fetch` them to see what changed."
    lines = git("log", "--oneline", f"{a}..{b}").stdout.splitlines()
    shown = lines[:MAX_COMMITS]
    more = f" ({len(lines) - MAX_COMMITS} more not listed)" if len(lines) > MAX_COMMITS else ""
    return shown, f"{len(lines)} commit(s) in {newer.label}'s code that {older.label}'s lacks{more}."


def decisions(name: str, sides: tuple[Side, Side]) -> list[dict]:
    """The promotion log rows of the two versions, newest first."""
    wanted = {s.ref.version for s in sides}
    return [row for row in versions.promotion_log(name) if row["version"] in wanted]


@dataclass(frozen=True)
class Report:
    title: str
    markdown: str
    champion: str   # version numbers
    candidate: str


def build(name: str, candidate: str | None = None) -> Report:
    """The report on ``name`` as markdown (``candidate``: a version to review instead of the
    default one)."""
    import datetime as dt

    import jinja2

    champion_ref, candidate_ref = choose(name, candidate)
    champion, chosen = side("champion", champion_ref), side("candidate", candidate_ref)
    root = settings.project_root()
    folder = (chosen.config or champion.config or {}).get("data", {}).get("folder", "")
    rows, baselines, metric_note = metric_rows(champion, chosen)
    config_rows, config_note = config_diff(champion, chosen)
    commits, code_note = code_diff(root, champion, chosen)
    env = jinja2.Environment(loader=jinja2.PackageLoader("zooflow.governance", "templates"), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters.update(cell=md_cell, code=md_code, fmt=lambda v: "-" if v is None else f"{v:.4f}",
                       when=lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M"))
    title = f"Review: {name} champion {champion.label} vs candidate {chosen.label}"
    text = env.get_template("review_report.md.j2").render(
        title=title, name=name, champion=champion, candidate=chosen, sides=(champion, chosen),
        primary=chosen.ref.tags.get("primary_metric", ""), rows=rows, baselines=baselines, metric_note=metric_note,
        data=data_change(root, folder, champion, chosen) if folder else DataChange("", [], "No data folder recorded."),
        config_rows=config_rows, config_note=config_note, commits=commits, code_note=code_note,
        log=decisions(name, (champion, chosen)), written=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}")
    return Report(title, text, champion.ref.version, chosen.ref.version)


def write(name: str, output: Path, candidate: str | None = None) -> tuple[Path, Path]:
    """Write ``review-<name>-v<champion>-vs-v<candidate>.md`` and ``.html`` into ``output``;
    their paths."""
    report = build(name, candidate)
    stem = f"review-{name}-v{report.champion}-vs-v{report.candidate}"
    markdown_file, html_file = output / f"{stem}.md", output / f"{stem}.html"
    try:
        output.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(report.markdown, encoding="utf-8")
        html_file.write_text(HTML_PAGE.format(title=html.escape(report.title), body=render_html(report.markdown)),
                             encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write the review report into {output}: {error.strerror or error}; "
                        "choose another folder with --output") from None
    return markdown_file, html_file
