"""The model card as a reviewer sees it: a real headless Chromium opens the HTML card from an
MLflow server's artifact URL, the way the MLflow UI shows an HTML artifact, and every figure in
it must have loaded. A screenshot of the rendered card is kept under the test's tmp folder.

The MLflow UI fetches an HTML artifact from ``/get-artifact`` (served as an attachment, so a
browser never renders it on the server's origin) and shows the text in an iframe with no base
URL: relative figure links resolve to nothing there. The wrapper page below does the same
(fetch, then an iframe from the text) and writes each image's ``naturalWidth`` into its own DOM,
which ``--dump-dom`` prints.

The real UI is checked too: Chromium, driven over the DevTools protocol (``tests/browser.py``),
opens the run's artifact view in the React app ``mlflow server`` serves, and the images are read
inside the sandboxed iframe the viewer renders the card in.
"""

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from flows.pipeline import train_task
from tests import servers
from tests.browser import Browser, CdpError
from tests.conftest import make_project, using_project
from tests.servers import free_port
from zooflow import settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")

WRAPPER = """<!doctype html><html><body style="margin:0">
<pre id="result">pending</pre>
<iframe id="card" style="width:1200px;height:2600px;border:0"></iframe>
<script>
const result = document.getElementById("result");
const frame = document.getElementById("card");
fetch(%(url)s).then(answer => {
  result.textContent = "fetched: HTTP " + answer.status;
  return answer.text();
}).then(text => {
  result.textContent += ", " + text.length + " characters";
  frame.srcdoc = text;  // like the UI: the card's text in a frame, no base URL for relative links
  // then wait until every image has loaded or failed (complete), and report their widths
  const poll = setInterval(() => {
    const images = Array.from((frame.contentDocument || {images: []}).images);
    if (!images.length || !images.every(image => image.complete)) return;
    clearInterval(poll);
    result.textContent = JSON.stringify(images.map(image => ({
      src: image.getAttribute("src").slice(0, 40), width: image.naturalWidth, alt: image.alt})));
  }, 100);
}).catch(error => { result.textContent = "error: " + error; });
</script></body></html>
"""


@pytest.fixture(scope="module")
def served_card(tmp_path_factory, prefect_server):
    """One smoke model trained in a fresh project, and an MLflow server on the project's store."""
    root = make_project(tmp_path_factory.mktemp("card") / "project", policy={"threshold": 0.0, "margin": 0.01})
    with using_project(root):
        result = train_task("classification", "vgg16-transfer", "smoke")
        store, artifacts = settings.tracking_uri(), str(root / "mlflow" / "artifacts")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = servers.start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "1", "--backend-store-uri", store, "--default-artifact-root", artifacts],
                           f"{url}/health", env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    yield url, result["run_id"]
    servers.stop(server)


def _chromium(folder, *arguments) -> str:
    """Run headless Chromium once; returns its stdout. ``--disable-web-security`` lets the local
    wrapper page fetch from the MLflow server's origin (the UI itself is served from there)."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-web-security",
               f"--user-data-dir={folder / 'profile'}", "--virtual-time-budget=15000", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True).stdout


def test_every_figure_of_the_html_card_loads_from_the_mlflow_artifact_url(served_card, tmp_path):
    url, run_id = served_card
    artifact_url = f"{url}/get-artifact?path=card/model_card.html&run_uuid={run_id}"
    page = tmp_path / "reviewer.html"
    page.write_text(WRAPPER % {"url": json.dumps(artifact_url)})

    started = time.time()
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S).group(1)
    assert found.startswith("["), f"the wrapper page did not finish: {found[:500]}"
    images = json.loads(found.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    # the classification card shows a confusion matrix and a grid of validation predictions
    assert {image["alt"] for image in images} >= {"confusion_matrix", "validation_predictions"}, images
    assert all(image["src"].startswith("data:image/png;base64,") for image in images), images
    assert all(image["width"] > 0 for image in images), images  # every figure decoded: none broken

    screenshot = tmp_path / "model_card.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1200,2600", page.as_uri())
    assert screenshot.stat().st_size > 10_000
    print(f"\nscreenshot of the card as rendered: {screenshot} ({time.time() - started:.1f} s in Chromium)")


# run in an isolated world of the card's frame: the document's state and every image's
IMAGES = """JSON.stringify({state: document.readyState, title: document.title,
  images: Array.from(document.images).map(image => ({alt: image.alt, complete: image.complete,
    width: image.naturalWidth, src: (image.getAttribute("src") || "").slice(0, 40)}))})"""


def card_images(browser: Browser, match=lambda url: url.startswith("blob:")) -> dict:
    """Wait until the frame the artifact viewer renders the card in (a sandboxed iframe on a
    ``blob:`` URL in MLflow 3's UI) has loaded, with every image complete (loaded or broken);
    returns its state, title and images (alt, complete, naturalWidth, start of src)."""
    def probe():
        try:
            found = browser.find_frame(match)
            if found is None:
                return None
            session, frame_id = found
            # a fresh world each time: the viewer may replace the frame's document while it loads
            context = browser.isolated_world(frame_id, session)
            card = json.loads(browser.evaluate(IMAGES, context, session))
        except CdpError:
            return None  # the frame went away between two commands; look again
        loaded = card["state"] == "complete" and card["images"] and all(i["complete"] for i in card["images"])
        return card if loaded else None

    return browser.wait_for(probe, "the HTML card, with all of its images complete, in the artifact viewer's iframe")


def test_the_mlflow_ui_artifact_viewer_shows_every_figure_of_the_html_card(served_card, tmp_path):
    """The real MLflow UI (the React app ``mlflow server`` serves), in headless Chromium driven
    over CDP: the run's artifact view with the HTML card selected renders it in its iframe, and
    every ``<img>`` in there has loaded (complete, naturalWidth > 0). Screenshot kept in tmp_path."""
    url, run_id = served_card
    experiment_id = mlflow.tracking.MlflowClient(url).get_run(run_id).info.experiment_id
    # MLflow 3's route for a run's artifact: runPageWithTab, "artifacts/<path>" (hash router)
    page = f"{url}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/card/model_card.html"

    started = time.time()
    with Browser(tmp_path, width=1400, height=1600, timeout=60) as browser:
        browser.navigate(page)
        card = card_images(browser)
        screenshot = browser.screenshot(tmp_path / "mlflow_ui_model_card.png")
        shown = browser.visible_text()
    images = card["images"]
    context = f"{page}: {card['title']!r}, images {images}; the UI shows:\n{shown}"
    # the classification card shows a confusion matrix and a grid of validation predictions
    assert {image["alt"] for image in images} >= {"confusion_matrix", "validation_predictions"}, context
    broken = [image for image in images if image["width"] <= 0]
    assert not broken, f"broken figures (naturalWidth 0) in the card: {broken}; {context}"
    assert "model_card.html" in shown, context  # the viewer shows the card's own artifact
    assert screenshot.stat().st_size > 10_000
    print(f"\nscreenshot of the MLflow UI showing the card: {screenshot} ({time.time() - started:.1f} s in Chromium)")


def test_the_markdown_card_keeps_relative_figure_links(served_card):
    """The downloaded copy still works: the markdown card links the files beside it."""
    url, run_id = served_card
    text = urllib.request.urlopen(f"{url}/get-artifact?path=card/model_card.md&run_uuid={run_id}").read().decode()
    assert "![confusion_matrix](confusion_matrix.png)" in text
    assert "data:image" not in text


def test_flow_run_is_named_and_its_card_artifact_carries_the_figures(served_card):
    """In Prefect's UI: the run reads <task>-<model>-<profile>, and the card artifact beside it
    shows its PNG figures (data URIs, which Prefect 3.9's markdown renderers keep)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=["classification-vgg16-transfer-smoke"])))
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["card-classification-vgg16-transfer-v1"])))
    assert runs, "no flow run named classification-vgg16-transfer-smoke"
    card = next(a for a in artifacts if a.flow_run_id in {run.id for run in runs})
    assert "![confusion_matrix](data:image/png;base64," in card.data
    assert "![validation_predictions](data:image/png;base64," in card.data
