"""Each task module's own parameters: the ``params:`` block of its models in ``configs/<task>.yaml``.

``RunConfig`` holds what every run has (epochs, batch size, optimiser, schedule, ...); what only
one task reads (an image size, a tokenizer, a GAN's latent size) lives in that task's class here,
so a GAN config cannot set ``tokenizer``. This module imports only pydantic: resolving a config
never imports torch or a task module.

A new task adds its class and one ``PARAMS`` entry (keyed by the task module's name, so
``sentiment-ja``, which uses the ``sentiment`` module, gets ``SentimentParams``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskParams(BaseModel):
    """A task's parameters: strict (an unknown key is an error) and frozen, like the rest of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassificationParams(TaskParams):
    """Chapter 1: image size and the VGG's size."""

    input_size: int = Field(0, description="side of the square the model sees (train crop, val center crop)")
    resize: int = Field(0, description="val/serving: resize the short side to this before the center crop "
                                       "(unset: input_size)")
    width: float = Field(1.0, description="VGG: channel multiplier of the convolutions (1: the book's)")
    hidden: int = Field(0, description="VGG: units of FC1 and FC2 (the book's 4096)")

    @model_validator(mode="before")
    @classmethod
    def _resize_defaults_to_input_size(cls, values):
        # Unset, the val transform resizes straight to the crop size (the centre crop then keeps all).
        if isinstance(values, dict) and "input_size" in values and "resize" not in values:
            values = {**values, "resize": values["input_size"]}
        return values


class SentimentParams(TaskParams):
    """Chapters 7-8: how texts become token ids."""

    tokenizer: str = Field("book", description="the word tokenizer (the vocabulary and the TF-IDF baseline)")
    max_length: int = Field(256, description="tokens per text (longer ones are cut)")
    min_freq: int = Field(10, description="a word enters the vocabulary at this many training occurrences")
    embedding_dim: int = Field(0, description="Transformer: size of the word vectors (the pretrained file's)")
    dropout: float = Field(0.1, ge=0, lt=1, description="Transformer: dropout in its blocks (the book's 0.1)")


class GanParams(TaskParams):
    """What the chapter 5-6 GANs share: the images they learn and the networks' sizes."""

    input_size: int = Field(0, description="side of the (upscaled) square images the networks see")
    width: float = Field(1.0, description="channel multiplier of the networks (1: the book's)")
    latent_dim: int = Field(20, description="GANs: size of z")
    normal_labels: tuple[str, ...] = Field((), description="GANs: the labels the model learns (generators: the "
                                                           "digits to draw; anomaly: the normal digits)")
    discriminator_batchnorm: bool = Field(False, description="GANs: batch norm in D (the DCGAN paper's; the "
                                                            "book's D has none)")
    max_select_samples: int | None = Field(None, description="adversarial training: pick the kept checkpoint on "
                                                             "an even spread of at most this many validation samples")


class GenerationParams(GanParams):
    """Chapter 5: DCGAN and SAGAN (nothing beyond what the GANs share)."""


class AnomalyParams(GanParams):
    """Chapter 6: AnoGAN's latent search, the anomaly score and EfficientGAN's loss."""

    search_steps: int = Field(0, description="AnoGAN: Adam steps of the latent search per image")
    search_lr: float = Field(0.0, description="AnoGAN: learning rate of the latent search")
    feature_weight: float = Field(0.1, description="anomaly score = (1-w) pixel residual + w feature residual")
    select_anomalies_per_class: int = Field(20, ge=0, description="the checkpoint-selection set is every "
                                                                   "validation normal and this many of each "
                                                                   "anomalous class (0: all)")
    reconstruction_weight: float = Field(0.0, ge=0, description="EfficientGAN: weight of the mean |x - G(E(x))| "
                                                                 "term in G and E's loss (0: the book's loss)")


class DetectionParams(TaskParams):
    """Chapter 2: the detector's input, size, augmentation, matching and decoding."""

    input_size: int = Field(300, ge=32, description="side of the square the detector sees (SSD300: 300)")
    width: float = Field(1.0, gt=0, description="SSD300: channel multiplier of the VGG base and extras (1: the book's)")
    batch_norm: bool = Field(False, description="SSD300: batch norm after each conv of the base and extras (not the "
                                                "book's; what lets it learn from random weights)")
    match_iou: float = Field(0.5, gt=0, lt=1, description="a default box is an object's when their IoU is at least this")
    negative_ratio: int = Field(3, ge=1, description="hard negative mining: background boxes kept per object box")
    zoom_out_max: float = Field(4.0, ge=1, description="augmentation: the book's expand, up to this many times the "
                                                      "image's size (1: off)")
    score_threshold: float = Field(0.01, ge=0, lt=1, description="evaluation: detections below this score are dropped "
                                                               "(low, as mAP needs the whole ranking)")
    nms_iou: float = Field(0.45, gt=0, le=1, description="per-class non-maximum suppression: overlap that suppresses")
    top_k: int = Field(200, ge=1, description="detections kept per image after NMS")
    min_score: float = Field(0.3, ge=0, lt=1, description="served answers and card figures: the least score shown")


class ScaledAugmentationParams(TaskParams):
    """Parameters of a task whose augmentation rescales by a random factor in
    ``[scale_min, scale_max]`` (the subclass declares both, with its own defaults)."""

    @model_validator(mode="after")
    def _scales_in_order(self):
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) is larger than scale_max ({self.scale_max})")
        return self


class SegmentationParams(ScaledAugmentationParams):
    """Chapter 3: what the segmenter sees, its size, its loss and its augmentation."""

    input_size: int = Field(475, ge=64, description="side of the square the network sees (the book's PSPNet: 475); "
                                                     "training crops it, evaluation and serving resize to it")
    width: float = Field(1.0, gt=0, description="PSPNet: channel multiplier of the whole network (1: the book's)")
    aux_weight: float = Field(0.4, ge=0, description="PSPNet: weight of the auxiliary head's loss (the book's 0.4)")
    scale_min: float = Field(0.5, gt=0, description="augmentation: the least random rescale of an image before "
                                                    "the crop, relative to input_size (the book's 0.5)")
    scale_max: float = Field(1.5, gt=0, description="augmentation: the largest random rescale (the book's 1.5)")
    rotation: float = Field(10.0, ge=0, le=180, description="augmentation: random rotation up to this many degrees "
                                                              "(the book's 10; 0: off)")
    flip: bool = Field(True, description="augmentation: mirror half the training images (the book's)")


POSE_STRIDE = 8  # input pixels per cell of both pose models' maps (three stride-2 steps)


class PoseParams(ScaledAugmentationParams):
    """Chapter 4: the network's input and size, the targets, the augmentation, decoding and scoring."""

    input_size: int = Field(368, ge=32, description="side of the square the network sees (the book's 368 = 46 x 8); "
                                                     "training crops it, evaluation and serving letterbox to it; "
                                                     "a multiple of 8, so both models' maps are input_size / 8")
    width: float = Field(1.0, gt=0, description="OpenPose: channel multiplier of the whole network (1: the book's)")
    stages: int = Field(0, ge=0, description="two-branch stages (0: the architecture's own, OpenPose 6 as the book, "
                                             "MobileNet 2)")
    channels: int = Field(64, ge=1, description="MobileNet OpenPose: channels of the reduction and the stages")
    sigma: float = Field(7.0, gt=0, description="targets: spread of a part's Gaussian peak, input pixels (CMU's 7)")
    limb_width: float = Field(8.0, gt=0, description="targets: half-width of a limb's PAF, input pixels (CMU's 8)")
    scale_min: float = Field(0.5, gt=0, description="augmentation: the least random rescale of the short side, "
                                                    "relative to input_size (CMU's 0.5)")
    scale_max: float = Field(1.1, gt=0, description="augmentation: the largest random rescale (CMU's 1.1)")
    rotation: float = Field(40.0, ge=0, le=180, description="augmentation: random rotation up to this many degrees "
                                                              "(CMU's 40; 0: off)")
    flip: bool = Field(True, description="augmentation: mirror half the training images, left and right swapped")
    peak_threshold: float = Field(0.1, gt=0, description="decoding: least heatmap value of a part peak (CMU's 0.1)")
    paf_threshold: float = Field(0.05, description="decoding: least PAF value along a limb sample (CMU's 0.05)")
    min_parts: int = Field(3, ge=1, le=18, description="decoding: people with fewer of the 18 parts are dropped")
    min_score: float = Field(0.4, ge=0, description="decoding: people with a lower mean part and limb score are "
                                                    "dropped (CMU's 0.4)")
    upsample: int = Field(1, ge=1, le=8, description="decoding: resize the maps by this factor first (1: decode at "
                                                     "stride 8 with sub-cell peak refinement)")
    area_override: Literal["bbox"] | None = Field(None, description="scoring: bbox scores OKS with each person's "
                                                                    "bbox w x h as its area instead of COCO's "
                                                                    "segmentation area (the demo set's stick "
                                                                    "figures: see metrics.py)")

    @model_validator(mode="after")
    def _on_the_stride(self):
        if self.input_size % POSE_STRIDE:
            raise ValueError(f"input_size ({self.input_size}) must be a multiple of {POSE_STRIDE}: the maps are "
                             f"input_size / {POSE_STRIDE} cells a side")
        return self


class VideoParams(TaskParams):
    """Chapter 9: how clips are sampled and seen, the ECO network's size, and the baseline."""

    segments: int = Field(16, ge=2, description="frames sampled per clip, one from each of this many equal "
                                                "segments (the book's 16)")
    input_size: int = Field(224, ge=64, description="side of the square frames the network sees (the book's "
                                                    "224); training crops it, evaluation resizes and centre-crops")
    resize: int = Field(0, ge=0, description="evaluation and serving: resize the short side to this before the "
                                             "centre crop (0: input_size)")
    crop_scale: float = Field(0.66, gt=0, le=1, description="training: the least area share of a random crop, "
                                                            "the same crop for every frame of a clip (1: off)")
    flip: bool = Field(False, description="training: mirror half the clips (off by default: a mirrored clip "
                                          "moves the other way, so direction classes would swap)")
    width: float = Field(1.0, gt=0, description="ECO: channel multiplier of the whole network (1: the book's)")
    dropout: float = Field(0.8, ge=0, lt=1, description="ECO: dropout before the classifier (ECO's 0.8)")
    input_format: Literal["imagenet", "caffe"] = Field(
        "imagenet", description="pixels as the network expects them: imagenet (0-1, RGB, ImageNet mean and std) or "
                                "caffe (the ECO authors' Kinetics weights: 0-255, BGR, mean subtracted)")
    single_frame_epochs: int | None = Field(None, ge=0, description="the single-frame baseline model trains this "
                                                                    "many epochs (unset: the run's)")


# task module (tasks/<module>.py) -> its parameters
PARAMS: dict[str, type[TaskParams]] = {"classification": ClassificationParams, "sentiment": SentimentParams,
                                       "generation": GenerationParams, "anomaly": AnomalyParams,
                                       "detection": DetectionParams, "segmentation": SegmentationParams,
                                       "pose": PoseParams, "video": VideoParams}

# The keys configs stored before ``params`` existed kept flat at the top level (every config had
# all of them, whatever its task). Fixed: it describes that old format, not today's classes.
FLAT_KEYS_BEFORE_PARAMS = ("input_size", "resize", "width", "hidden", "tokenizer", "max_length", "min_freq",
                           "embedding_dim", "latent_dim", "normal_labels", "discriminator_batchnorm",
                           "max_select_samples", "search_steps", "search_lr", "feature_weight",
                           "select_anomalies_per_class", "reconstruction_weight")


def params_class(module: str) -> type[TaskParams]:
    """The parameter class of a task module; a ValueError naming the known modules otherwise."""
    if module not in PARAMS:
        raise ValueError(f"no parameters are declared for task module '{module}'; known: {', '.join(PARAMS)}")
    return PARAMS[module]
