"""Progress lines for long phases, and the caps that keep demo/smoke runs short on big data."""

import logging

import numpy as np
import pytest
import torch

from zooflow import config, progress
from zooflow.data.subsets import capped, even_spread, spread_per_class
from zooflow.evaluation import generation as judging


def test_a_phase_logs_its_size_counts_while_running_and_its_time(caplog, monkeypatch):
    clock = iter([0.0, 5.0, 12.0, 15.0, 30.0, 31.0, 31.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="zooflow"):
        with progress.phase("judging", 300, "images", every=10.0) as shown:
            for _ in range(4):
                shown.advance(75)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "judging: 300 images ..."
    # 5 s: too soon for a line; 12 s: a line with the counts; 15 s: too soon again (10 s apart);
    # the last unit: the end line only
    assert lines[1] == "judging: 150/300 images (50%), 12 s"
    assert lines[2].startswith("judging: done, 300 images in 31.0 s")
    assert len(lines) == 3


def test_a_phase_stopped_by_an_error_says_where_it_stood(caplog):
    with caplog.at_level(logging.INFO, logger="zooflow"), pytest.raises(KeyboardInterrupt):
        with progress.phase("searching", 10, "steps") as shown:
            shown.advance(4)
            raise KeyboardInterrupt
    assert "searching: stopped after 4/10 steps" in caplog.records[-1].getMessage()


def test_even_spread_keeps_first_and_last_and_leaves_short_splits_alone():
    assert even_spread(10, None) is None and even_spread(10, 10) is None and even_spread(10, 20) is None
    assert even_spread(10, 4).tolist() == [0, 3, 6, 9]
    assert capped(torch.arange(100), 5).tolist() == [0, 25, 50, 74, 99]
    assert capped(np.arange(3), 5).tolist() == [0, 1, 2]


def test_the_judge_learns_from_at_most_its_cap_per_class_spread_through_the_file():
    labels = np.repeat(np.arange(3), [1000, 10, 600])
    images = np.arange(len(labels), dtype=np.int64)  # an image's "content" is its position
    kept_images, kept_labels = judging.judge_sample(images, labels, per_class=500)
    assert np.bincount(kept_labels).tolist() == [500, 10, 500]
    assert kept_images[kept_labels == 0].min() == 0 and kept_images[kept_labels == 0].max() == 999


@pytest.mark.parametrize("task, model", [("generation", "dcgan"), ("generation", "sagan"),
                                         ("anomaly", "anogan"), ("anomaly", "efficientgan")])
def test_demo_and_smoke_cap_what_grows_with_the_data_and_the_demo_digits_sit_below_the_caps(task, model):
    # The demo digits: 320 training, 80 validation and 100 test images per class; the GANs
    # learn 2 classes. The caps must not change a demo figure, and must bound a full-size run.
    for profile in ("demo", "smoke"):
        cfg = config.resolve(task, model, profile)
        assert cfg.max_eval_samples and cfg.params.max_select_samples
        assert cfg.max_train_samples or cfg.max_batches
    demo = config.resolve(task, model, "demo")
    assert demo.max_train_samples >= 2 * 320 and demo.params.max_select_samples >= 2 * 80 + 8 * 20
    assert demo.max_eval_samples >= 1000


def test_a_spread_per_class_caps_the_chosen_labels_and_drops_the_others():
    labels = np.repeat(np.arange(3), [10, 4, 6])
    keep = spread_per_class(labels, 3, among=[0, 1])
    assert np.flatnonzero(keep).tolist() == [0, 4, 9, 10, 12, 13]  # label 0: 0, 4.5->4, 9; label 1: 10, 11.5->12, 13
    assert spread_per_class(labels, None, among=[2]).tolist() == (labels == 2).tolist()
    assert spread_per_class(labels, 100).all()
