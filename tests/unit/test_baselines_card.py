"""Tasks with several baselines (anomaly: mean image and PCA): logged under their names and shown
side by side on the card, which says plainly when one beats the model; and card wording that
depends on the task (the GANs load no pretrained weights, so no sentence about them)."""

import pytest

from zooflow.config import book_pretrained, resolve
from zooflow.evaluation import baselines
from tests import step_values as values
from zooflow.governance.card import build_card, limitations
from zooflow.tasks.base import RunContext

NOTES = {"mean_image": "L1 distance to the mean normal training image",
         "pca": "reconstruction error (L2) from an 8-component PCA"}


def _card(tmp_path, cfg, evaluation):
    ctx = RunContext(cfg=cfg, info={"classes": [str(d) for d in range(10)]}, data_root=tmp_path)
    card = build_card(
        ctx, data=values.data_version(task_folder="anomaly", files=4), validation=values.validated(),
        trained=values.trained(), evaluation=evaluation, registered=values.registered(f"{cfg.task}-{cfg.model}"),
        decision=values.promotion("challenger"),
        run_id="r1", git={"git_commit": "c0ffee", "git_dirty": False}, folder=tmp_path / "card")
    return card.read_text()


def _anomaly_evaluation(model_auroc):
    return values.evaluation({"auroc": model_auroc, "auroc_class_1": 0.5}, primary="auroc",
                             baseline={"mean_image": {"auroc": 0.662, "auroc_class_1": 0.34}, "pca": {"auroc": 0.817}},
                             baseline_note=NOTES)


def test_named_baselines_log_under_their_names_and_one_baseline_stays_as_it_was():
    assert baselines.flat({"accuracy": 0.5}) == {"accuracy": 0.5}
    assert baselines.flat({"mean_image": {"auroc": 0.66}, "pca": {"auroc": 0.82}}) == \
        {"mean_image.auroc": 0.66, "pca.auroc": 0.82}
    assert baselines.named({"accuracy": 0.5}, "majority class") == {"": ("majority class", {"accuracy": 0.5})}


def test_the_card_shows_both_baselines_and_says_when_pca_beats_the_model(tmp_path):
    cfg = resolve("anomaly", "efficientgan", "smoke")
    text = _card(tmp_path, cfg, _anomaly_evaluation(0.753))
    assert "| metric | this version | champion | baseline mean_image | baseline pca |" in text
    assert "| auroc | 0.7530 | - | 0.6620 | 0.8170 |" in text
    assert "| auroc_class_1 | 0.5000 | - | 0.3400 | - |" in text
    assert "Baseline `pca`: reconstruction error (L2) from an 8-component PCA, scored on the same data." in text
    assert ("**The `pca` baseline scores higher auroc than this model** (0.8170 vs 0.7530): "
            "the model is not worth its cost on this data") in text
    assert "The model beats the `mean_image` baseline on auroc (0.7530 vs 0.6620)." in text

    text = _card(tmp_path / "better", cfg, _anomaly_evaluation(0.9))
    assert "not worth its cost" not in text and "The model beats the `pca` baseline" in text


def test_one_baseline_renders_as_before(tmp_path):
    cfg = resolve("classification", "vgg16-transfer", "smoke")
    evaluation = values.evaluation({"accuracy": 0.4}, baseline={"accuracy": 0.5}, baseline_note="majority class")
    text = _card(tmp_path, cfg, evaluation)
    assert "| metric | this version | champion | baseline |" in text and "| accuracy | 0.4000 | - | 0.5000 |" in text
    assert "Baseline: majority class, scored on the same data." in text
    assert "**This model loses to its baseline** on accuracy (0.4000 vs 0.5000)" in text


@pytest.mark.parametrize("task,model", [("anomaly", "anogan"), ("anomaly", "efficientgan"),
                                        ("generation", "dcgan"), ("generation", "sagan")])
def test_gan_cards_make_no_claim_about_pretrained_weights(task, model):
    for profile in ("smoke", "demo", "book"):
        notes = " ".join(limitations(RunContext(cfg=resolve(task, model, profile), info={}, data_root=None),
                                     book_pretrained(task, model)))
        assert "pretrained" not in notes and "chapters 1, 7 and 8" not in notes
        assert "cameras" not in notes


def test_a_model_the_book_starts_pretrained_says_what_it_lost(monkeypatch):
    cfg = resolve("classification", "vgg16-transfer", "smoke")  # smoke: pretrained none; book: imagenet
    book = book_pretrained("classification", "vgg16-transfer")
    assert book == "imagenet"
    # The card uses what the run read at its start, not the task file at card time.
    monkeypatch.setattr("zooflow.config.resolve", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-read")))
    notes = " ".join(limitations(RunContext(cfg=cfg, info={}, data_root=None), book))
    assert "Trained from random initialisation (`pretrained: none`) where the book starts from pretrained " \
           "weights (`imagenet` in the `book` profile)" in notes


def test_a_book_profile_run_told_to_start_from_scratch_says_what_it_lost():
    # `--set pretrained=none` on the book profile: the book still starts from ImageNet.
    cfg = resolve("classification", "vgg16-transfer", "book", overrides={"pretrained": "none"})
    notes = " ".join(limitations(RunContext(cfg=cfg, info={}, data_root=None),
                                 book_pretrained("classification", "vgg16-transfer")))
    assert "where the book starts from pretrained weights (`imagenet` in the `book` profile)" in notes
    assert "profile: smaller than the book's settings" not in notes
