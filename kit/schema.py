"""The typed schema of the settings the kit itself reads: the trainer section (its defaults are here and nowhere
else) and the shared keys of data, loss and model. An experiment's YAML states only what differs from them;
competition-specific keys (data.crop, model.encoder, ...) pass through to the competition that reads them.

Every value is checked for type and range before any work starts; a wrong one is one line naming the key, the value
and what is expected. Dataclasses, not pydantic: the kit's wheel also runs inside Kaggle's image, and this keeps its
run-time dependencies to what that image has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import ClassVar

from kit.errors import KitError


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _count(v) -> bool:
    return _int(v) and v >= 1


def _natural(v) -> bool:
    return _int(v) and v >= 0


def _flag(v) -> bool:
    return isinstance(v, bool)


def _or_null(ok: Callable) -> Callable:
    return lambda v: v is None or ok(v)


def setting(default, expected: str, ok: Callable[[object], bool]):
    return field(default=default, metadata={"expected": expected, "ok": ok})


@dataclass(frozen=True)
class Section:
    section: ClassVar[str]
    closed: ClassVar[bool] = False  # True: a key outside the schema is an error (a typo), not a competition's key
    # keys defaulted when read and recorded only where an experiment names them
    optional: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check(cls, values: dict):
        """The section's settings with every default applied; raises on a wrong value (or an unknown key if closed)."""
        known = {f.name: f for f in fields(cls)}
        for key, value in values.items():
            if key not in known:
                if cls.closed:
                    raise KitError(f"config: {cls.section}.{key}: unknown key; known: {', '.join(sorted(known))}")
                continue
            if not known[key].metadata["ok"](value):
                raise KitError(f"config: {cls.section}.{key}={value!r}; expected {known[key].metadata['expected']}")
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def resolved(cls, values: dict) -> dict:
        """The section as a run records it (and its readers read it): every default applied but those of the
        optional keys it does not name; checked first."""
        cls.check(values)
        return {k: v for k, v in {**cls.defaults(), **values}.items() if k not in cls.optional or k in values}


@dataclass(frozen=True)
class Trainer(Section):
    """trainer: every key the loop, the schedule and the fine-tuning read, with the default every experiment starts
    from (an experiment states only what differs)."""

    section = "trainer"
    closed = True
    # Filled into every resolved config (what a run records). The optional keys are checked and defaulted when read;
    # they may be overridden only where an experiment names them (a schedule's patience means nothing under cosine).
    optional: ClassVar[frozenset[str]] = frozenset(
        {"early_stopping_smoothing", "freeze_epochs", "unfreeze_stages", "backbone_lr", "layer_decay", "freeze_bn",
         "lr_decay",
         "plateau_patience", "schedule", "tta", "randaugment", "mixup", "sync_bn"}
    )  # fmt: skip

    accumulate: int = setting(1, "a whole number >= 1", _count)  # batches per optimiser step
    augment: bool = setting(True, "true or false", _flag)
    batch_size: int = setting(32, "a whole number >= 1", _count)
    channels_last: bool = setting(True, "true or false", _flag)
    compile: bool = setting(False, "true or false", _flag)  # torch.compile (the fused ops are triton_ops)
    early_stopping: int = setting(5, "a whole number >= 1", _count)  # epochs without improvement of the metric
    ema: float | None = setting(None, "a decay in (0, 1), or null", _or_null(lambda v: _number(v) and 0 < v < 1))
    epochs: int = setting(15, "a whole number >= 1", _count)
    grad_clip: float = setting(3.0, "a number > 0", lambda v: _number(v) and v > 0)
    lr: float = setting(0.002, "a number > 0", lambda v: _number(v) and v > 0)
    num_workers: int | None = setting(None, "a whole number >= 0, or null", _or_null(_natural))
    precision: str = setting("auto", "one of auto, bf16, fp16, fp32", lambda v: v in ("auto", "bf16", "fp16", "fp32"))
    seed: int = setting(0, "a whole number >= 0", _natural)
    warmup_epochs: int = setting(1, "a whole number >= 0", _natural)
    weight_decay: float = setting(1e-4, "a number >= 0", lambda v: _number(v) and v >= 0)

    early_stopping_smoothing: float | None = setting(
        None, "null or a number in [0, 1)", _or_null(lambda v: _number(v) and 0 <= v < 1)
    )
    freeze_epochs: int = setting(0, "a whole number >= 0", _natural)
    unfreeze_stages: int | None = setting(None, "a whole number >= 0, or null (all)", _or_null(_natural))
    backbone_lr: float = setting(1.0, "a factor > 0 of trainer.lr", lambda v: _number(v) and v > 0)
    layer_decay: float = setting(1.0, "a factor in (0, 1]", lambda v: _number(v) and 0 < v <= 1)
    freeze_bn: bool = setting(False, "true or false", _flag)
    lr_decay: float = setting(0.5, "a factor in (0, 1]", lambda v: _number(v) and 0 < v <= 1)
    plateau_patience: int = setting(2, "a whole number >= 1", _count)
    schedule: str = setting("cosine", "a schedule name", lambda v: isinstance(v, str))  # checked against SCHEDULES
    tta: bool | str = setting(
        False, "true (flip), false, or one of none, flip, dihedral",
        lambda v: _flag(v) or v in ("none", "flip", "dihedral"),
    )  # fmt: skip
    randaugment: str | None = setting(
        None, "a timm RandAugment string (e.g. rand-m9-n2-mstd0.5), or null",
        _or_null(lambda v: isinstance(v, str) and v.startswith("rand")),
    )  # fmt: skip
    mixup: float = setting(0.0, "a probability in [0, 1]", lambda v: _number(v) and 0 <= v <= 1)
    sync_bn: bool | str = setting("auto", "auto, true or false (DDP on GPUs)", lambda v: _flag(v) or v == "auto")


def trainer(section: dict) -> Trainer:
    """The trainer section's settings with every default applied."""
    return Trainer.check(section)


@dataclass(frozen=True)
class Data(Section):
    section = "data"
    dir: str | None = setting(
        None, "a folder path, or null (the synthetic data); an empty value names no folder",
        _or_null(lambda v: isinstance(v, str) and v.strip() != ""),
    )  # fmt: skip
    folds: int = setting(5, "a whole number >= 2", lambda v: _int(v) and v >= 2)
    fold_seed: int = setting(42, "a whole number >= 0", _natural)
    slices: int = setting(1, "a whole number >= 1", _count)
    size: int = setting(64, "a whole number >= 8", lambda v: _int(v) and v >= 8)
    studies: str = setting(
        "all", "all (every study train.csv lists has its images) or present (RSNA: train on the studies whose "
        "train_images/<study_id>/ exists)", lambda v: v in ("all", "present"),
    )  # fmt: skip
    # read by one competition each; checked here, never filled into a config that does not name them
    oversample_rare: int = setting(1, "a whole number >= 1 (copies of a training image holding the rare class)", _count)
    oversample_big_rock: int = setting(1, "a whole number >= 1 (copies of a training image holding big rock)", _count)
    fit: str = setting(
        "stretch", "stretch (each picture resized whole to the square) or content (cut to its largest bright region "
        "and padded to a square first: images stored with wide black borders)", lambda v: v in ("stretch", "content"),
    )  # fmt: skip
    crop_margin: float = setting(0.25, "a number >= 0 (context around a crop, as a share of its size)",
                                 lambda v: _number(v) and v >= 0)  # fmt: skip


@dataclass(frozen=True)
class Loss(Section):
    section = "loss"
    label_smoothing: float = setting(0.0, "a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1)
    class_weights: str | list | None = setting(
        None, "balanced, null, or a list of one number > 0 per class",
        lambda v: v is None or v == "balanced" or (isinstance(v, list) and v and all(_number(x) and x > 0 for x in v)),
    )  # fmt: skip


@dataclass(frozen=True)
class Model(Section):
    section = "model"
    head: dict | None = setting(
        None, "null (timm's classifier) or a mapping of hidden, se_reduction, dropout",
        _or_null(lambda v: isinstance(v, dict) and set(v) <= {"hidden", "se_reduction", "dropout"}),
    )  # fmt: skip
    dropout: float = setting(0.0, "a probability in [0, 1)", lambda v: _number(v) and 0 <= v < 1)


def _names(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) and x for x in v)


def _text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


@dataclass(frozen=True)
class Dataset(Section):
    """dataset: the section that declares a competition of a family from YAML alone (its layout, classes and what
    its synthetic twin looks like). Layout names and the clean settings are checked by the family that reads them."""

    section = "dataset"
    closed = True


@dataclass(frozen=True)
class ImageDataset(Dataset):
    family: str = setting("image_classification", "image_classification", lambda v: v == "image_classification")
    layout: str | list | None = setting(None, "a layout name, or a list of them", lambda v: True)
    slug: str | None = setting(None, "a Kaggle competition slug, or null (the name)", _or_null(_text))
    classes: list | None = setting(None, "a list of class names (by label index), or null (the folders')",
                                   _or_null(_names))  # fmt: skip
    aliases: dict | None = setting(None, "a mapping of folder name to class name, or null",
                                   _or_null(lambda v: isinstance(v, dict)))  # fmt: skip
    metric: str = setting("accuracy", "a metric name", _text)
    channels: int = setting(3, "1 or 3", lambda v: v in (1, 3) and _int(v))
    file: str = setting("training_set.npz", "the npz file's name", _text)
    arrays: str = setting("an2dl", "an2dl or medmnist (the npz's array names)", lambda v: v in ("an2dl", "medmnist"))
    synth_size: int = setting(28, "a whole number >= 8", lambda v: _int(v) and v >= 8)
    synth_classes: int | list = setting(
        10, "a whole number >= 2, or a list of class names (the synthetic twin's, where classes is null)",
        lambda v: (_int(v) and v >= 2) or _names(v),
    )  # fmt: skip
    clean: dict | None = setting(None, "a mapping, or null", lambda v: True)
    any_orientation: bool = setting(False, "true or false", _flag)


@dataclass(frozen=True)
class SegmentationDataset(Dataset):
    family: str = setting("segmentation", "segmentation", lambda v: v == "segmentation")
    layout: str | None = setting(None, "a layout name", lambda v: True)
    slug: str | None = setting(None, "a Kaggle competition slug, or null (the name)", _or_null(_text))
    classes: list | None = setting(None, "a list of class names, by mask value", _or_null(_names))
    ignore_index: int = setting(255, "a mask value (0 to 255)", lambda v: _int(v) and 0 <= v <= 255)
    channels: int = setting(3, "1 or 3", lambda v: v in (1, 3) and _int(v))
    images: str = setting("images", "a folder under data.dir", _text)
    masks: str = setting("masks", "a folder under data.dir", _text)
    rover: str = setting("msl", "an AI4Mars rover folder (msl)", _text)
    test_agreement: int = setting(3, "a whole number >= 1 (labellers who agree on a test mask)", _count)
    groups: str | None = setting(None, "scene, or null", lambda v: v in (None, "scene"))
    rare_class: str | None = setting(None, "one of dataset.classes, or null", _or_null(_text))
    synth_size: int = setting(64, "a whole number >= 8", lambda v: _int(v) and v >= 8)


SECTIONS = (Trainer, Data, Loss, Model)
