"""Model cards show user-supplied strings as text: no markup from them reaches the HTML page."""

import re
from html.parser import HTMLParser

import pytest

from zooflow.config import resolve
from tests import step_values as values
from zooflow.governance.card import build_card, render_html
from zooflow.tasks.base import RunContext

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


def _card(tmp_path, **changes):
    """Write a card whose class names, description, metric names, reasons and figure paths carry markup;
    returns (markdown, html)."""
    cfg = resolve("classification", "vgg16-transfer", "smoke").model_copy(
        update={"description": f"Bees {SCRIPT} and [a link](javascript:alert(3))",
                "limitations": (f"limit {IMG}",), **changes})
    ctx = RunContext(cfg=cfg, info={"classes": [IMG, "ok`` ` x", "a|b"]}, data_root=tmp_path)
    metrics = {"accuracy": 0.9, f"precision_{IMG}": 0.5, "recall_a|b": 0.4, "f1_<b>bold</b>": 0.3}
    evaluation = values.evaluation(metrics, baseline={"accuracy": 0.5}, champion_note=f"no champion {SCRIPT}",
                                   baseline_note="majority class",
                                   figures=[tmp_path / f"fig {IMG}.png", tmp_path / "attention (1).html"])
    card = build_card(
        ctx, data=values.data_version(f"v1{SCRIPT}", task_folder="hym`enoptera", files=10),
        validation=values.validated(f"passed {IMG}"),
        trained=values.trained(seconds=1.5),
        evaluation=evaluation,
        registered=values.registered("classification-vgg16-transfer"),
        decision=values.promotion(reasons=[f"metric {SCRIPT} passes", "see [here](JaVa\tScRiPt:alert(4))"]),
        run_id="r1", git={"git_commit": "c0ffee", "git_dirty": False}, folder=tmp_path / "card")
    return card.read_text(), (tmp_path / "card" / "model_card.html").read_text()


def _elements(page: str) -> list[tuple[str, list]]:
    """Every start tag of the page with its attributes, as a browser's parser sees them."""
    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(page)
    return found


def _tags(page: str) -> set[str]:
    """Every tag name in the page's body."""
    return {tag for tag, _ in _elements(page.split("<body>", 1)[1])}


def test_markup_in_user_strings_is_text_in_the_html_card(tmp_path):
    text, page = _card(tmp_path)
    assert "<script" not in page.lower()
    assert _tags(page) <= {"h1", "h2", "p", "em", "strong", "ul", "li", "table", "thead", "tbody", "tr", "th",
                           "td", "code", "pre", "a", "img", "body", "html"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, not run
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<p><em>Bees &lt;script&gt;alert(1)&lt;/script&gt; and <a>a link</a></em></p>" in page
    assert "<li>see <a>here</a></li>" in page  # the javascript: targets are gone, the link text stays
    for tag, attributes in _elements(page):
        assert not [name for name, _ in attributes if name.startswith("on")], (tag, attributes)
        assert not [value for _, value in attributes if "javascript" in (value or "").lower()], (tag, attributes)
    # only the card's own figures are images, and links stay on the card's folder
    assert re.findall(r'<img [^>]*src="([^"]*)"', page) == ["fig%20%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E.png"]
    assert 'href="attention%20%281%29.html"' in page


def test_the_markdown_card_stays_readable(tmp_path):
    text, page = _card(tmp_path)
    assert f"*Bees {SCRIPT} and [a link](javascript:alert(3))*" in text  # the description as written
    assert "| recall_a\\|b |" in text  # a pipe in a metric name keeps the table's columns
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") - line.count("\\| ") == 3 for line in rows), rows
    assert "<td>recall_a|b</td>" in page
    assert "```json" in text and '"description"' in text
    # the class names show whole, in a code span that their backticks cannot close
    assert '<code>["&lt;img src=x onerror=alert(2)&gt;", "ok`` ` x", "a|b"]</code>' in page
    assert "<code>data/hym`enoptera</code>" in page


def test_a_backtick_fence_in_the_config_cannot_end_its_code_block(tmp_path):
    text, page = _card(tmp_path, limitations=("```\n<script>alert(5)</script>\n```",))
    assert "<script" not in page.lower()
    body = page.split("<body>", 1)[1]
    assert body.count("<pre>") == 1  # the config block, in one piece


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "java\nscript:alert(1)",
                                 " javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
                                 "vbscript:msgbox(1)"])
def test_unsafe_link_targets_are_dropped(url):
    page = render_html(f"[click]({url}) and ![pic]({url})")
    assert "href" not in page and "src" not in page and "click" in page


def test_safe_link_targets_are_kept():
    page = render_html("[docs](https://mlflow.org) [figure](confusion_matrix.png) ![f](f.png) ![remote](https://x.org/p.png)")
    assert 'href="https://mlflow.org"' in page and 'href="confusion_matrix.png"' in page
    assert 'src="f.png"' in page and "x.org/p.png" not in page  # images only from the card's folder


# -- figures inside the HTML card (it is opened where relative links resolve to nothing) -------

def _png(path, size=(3, 2)):
    """A small real PNG at ``path``; returns its bytes."""
    from PIL import Image

    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path.read_bytes()


def test_html_card_embeds_its_png_figures_and_nothing_else(tmp_path):
    import base64

    figure = tmp_path / "confusion_matrix.png"
    written = _png(figure)
    attention = tmp_path / "attention.html"
    attention.write_text("<body><h3>&lt;script&gt;alert(9)&lt;/script&gt;</h3><span style='background:red'>tok</span></body>")
    cfg = resolve("classification", "vgg16-transfer", "smoke")
    ctx = RunContext(cfg=cfg, info={"classes": ["a", "b"]}, data_root=tmp_path)
    evaluation = values.evaluation({"accuracy": 0.9}, champion_note="none", figures=[figure, attention])
    markdown_card = build_card(
        ctx, data=values.data_version(), validation=values.validated(), trained=values.trained(),
        evaluation=evaluation, registered=values.registered(),
        decision=values.promotion(reasons=["ok ![remote](data:image/png;base64,Zm9yZWlnbg==) ![local](confusion_matrix.png)"]),
        run_id="r1", git={}, folder=tmp_path / "card")
    page = (tmp_path / "card" / "model_card.html").read_text()
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources), sources
    assert "Zm9yZWlnbg==" not in page  # a data URI written in the text is dropped, only the card's own are embedded
    assert base64.b64decode(sources[0].split(",", 1)[1]) == written  # the figure's bytes round-trip
    # the markdown card keeps relative links, for a downloaded copy of the card folder
    assert "![confusion_matrix](confusion_matrix.png)" in markdown_card.read_text()
    # the HTML figure: inline, in a frame with every sandbox restriction; its escaped text stays text
    frames = [attrs for tag, attrs in _elements(page) if tag == "iframe"]
    assert len(frames) == 1 and dict(frames[0])["sandbox"] == ""
    assert "&lt;script&gt;alert(9)" in dict(frames[0])["srcdoc"]  # decoded once by the browser: still text
    assert 'href="attention.html"' not in page and "src=\"confusion" not in page


def test_png_data_uri_refuses_a_file_that_is_not_a_png(tmp_path):
    from zooflow.governance.card import png_data_uri

    fake = tmp_path / "x.png"
    fake.write_text("<svg onload=alert(1)>")
    assert png_data_uri(fake) is None  # an SVG named .png is not embedded as a PNG


def test_prefect_artifact_markdown_carries_png_figures_and_names_html_ones(tmp_path):
    from zooflow.governance.card import artifact_markdown

    figure, page = tmp_path / "confusion_matrix.png", tmp_path / "attention.html"
    _png(figure)
    page.write_text("<body>attention</body>")
    text = ("# Model card\n\n- note: ![confusion_matrix](confusion_matrix.png)\n\n## Figures\n\n"
            "![confusion_matrix](confusion_matrix.png)\n[attention (HTML)](attention.html)\n\n## Lineage\n")
    out = artifact_markdown(text, [str(figure), str(page)], "run123")
    assert "![confusion_matrix](data:image/png;base64," in out
    assert "- note: ![confusion_matrix](confusion_matrix.png)" in out  # outside the figures section: untouched
    assert "attention (HTML): artifact `card/attention.html` of MLflow run `run123`" in out
