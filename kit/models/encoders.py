"""Encoder names checked before a model is built, so a typo is one line with the nearest valid names."""

from __future__ import annotations

import difflib

import segmentation_models_pytorch as smp
import timm

from kit.errors import UnknownNameError


def _refuse(library: str, name: str, known: list[str]) -> None:
    near = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
    hint = f"; nearest: {', '.join(near)}" if near else ""
    raise UnknownNameError(f"model.encoder={name!r} is not a {library} encoder{hint}")


def check_timm(name: str) -> str:
    if not timm.is_model(name):
        _refuse("timm", name, timm.list_models())
    return name


def check_smp(name: str) -> str:
    known = smp.encoders.get_encoder_names()
    if name not in known and not (name.startswith("tu-") and timm.is_model(name[3:])):
        _refuse("segmentation-models-pytorch", name, known)
    return name
