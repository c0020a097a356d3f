"""ESRGAN-family upscalers: found from their file headers, loaded through spandrel.

The layouts spandrel's ``ESRGAN`` architecture reads, told apart by their keys exactly as
spandrel tells them apart:

    layout                     keys                                            factor
    ESRGAN (old arch)          model.0, model.1.sub.N.RDB1.conv1.0             2 ** upsample convs
    ESRGAN+                    model.0, model.1.sub.N.RDB1.conv1x1             (model.3, model.6, ...)
    Real-ESRGAN (new arch)     conv_first, body.N.rdb1.conv1, conv_body,       2 ** conv_upK,
                               conv_up1.., conv_hr, conv_last                  / 2 when conv_first
    BSRGAN / RealSR            conv_first, RRDB_trunk.N.RDB1.conv1,            takes 12 channels
                               trunk_conv, upconv1.., HRconv, conv_last        (pixel unshuffle)

Listing reads only the JSON header of each ``.safetensors`` file (names and shapes), so it
costs no tensor reads and no torch import. The weights are read on the first job with
``safetensors`` (never a pickle) and handed to ``spandrel.ModelLoader().load_from_state_dict``,
which must agree with the header on the architecture and the factor. Loaded models stay in a
small least-recently-used cache.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brushlink.plugin.errors import EngineError, Unsupported

from ..diffusers.loading import read_header
from ..kit.model_files import ModelFile

log = logging.getLogger(__name__)

CACHE_SIZE = 2  # loaded upscalers kept warm
_UPCONV = re.compile(r"^(?:upconv|conv_up)(\d+)\.weight$")
_OLD_SEQ = re.compile(r"^model\.(\d+)\.")


@dataclass(frozen=True)
class Upscaler:
    """An upscaler file and what its header says it is."""

    name: str
    path: Path
    scale: int  # the network's own factor
    layout: str  # words for the card
    size_bytes: int


def _shape(header: dict[str, Any], key: str) -> list[int]:
    entry = header.get(key)
    shape = entry.get("shape") if isinstance(entry, dict) else None
    if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
        raise ValueError(f"no tensor `{key}`")
    return shape


def detect(header: dict[str, Any]) -> tuple[int, str]:
    """(factor, layout words) of an ESRGAN-family state dict, from names and shapes only;
    ValueError when it is not one (or not an RGB upscaler)."""
    keys = set(header) - {"__metadata__"}
    if "model.0.weight" in keys and (
        "model.1.sub.0.RDB1.conv1.0.weight" in keys or "model.1.sub.0.RDB1.conv1x1.weight" in keys
    ):
        length = 1 + max(int(m.group(1)) for k in keys if (m := _OLD_SEQ.match(k)))
        scale = 2 ** max(0, (length - 5) // 3)
        plus = "model.1.sub.0.RDB1.conv1x1.weight" in keys
        in_nc = _shape(header, "model.0.weight")[1]
        out_nc = _shape(header, f"model.{length - 1}.weight")[0]
        layout = "ESRGAN+" if plus else "ESRGAN"
    elif (
        "conv_first.weight" in keys
        and "conv_last.weight" in keys
        and (
            {"body.0.rdb1.conv1.weight", "conv_body.weight"} <= keys
            or {"RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"} <= keys
        )
    ):
        ups = [int(m.group(1)) for k in keys if (m := _UPCONV.match(k))]
        scale = 2 ** len(ups)
        in_nc = _shape(header, "conv_first.weight")[1]
        out_nc = _shape(header, "conv_last.weight")[0]
        layout = "Real-ESRGAN" if "conv_body.weight" in keys else "BSRGAN/RealSR"
        for factor in (2, 4):  # pixel unshuffle in front: RealESRGAN_x2plus and the like
            if in_nc == out_nc * factor * factor:
                in_nc, scale = out_nc, scale // factor
    else:
        raise ValueError("not an ESRGAN-family state dict")
    if in_nc != 3 or out_nc != 3:
        raise ValueError(f"{in_nc} channels in, {out_nc} out; an RGB upscaler has 3 and 3")
    if scale < 2:
        raise ValueError(f"factor {scale}: a restoration model, not an upscaler")
    return scale, layout


def probe(entry: ModelFile) -> Upscaler | None:
    """The upscaler in a listed file, or None (logged) when the file holds something else."""
    try:
        scale, layout = detect(read_header(entry.path))
    except (Unsupported, ValueError, KeyError, TypeError) as exc:  # one odd file: not listed
        log.info("%s is not listed as an upscaler: %s", entry.path, exc)
        return None
    return Upscaler(entry.name, entry.path, scale, layout, entry.size_bytes)


class LoadedModels:
    """spandrel models by file, the most recently used ``size`` kept (the others dropped)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._models: OrderedDict[tuple[Path, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, upscaler: Upscaler, device: str) -> Any:
        key = (upscaler.path, upscaler.path.stat().st_mtime_ns)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model = load(upscaler, device)
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def load(upscaler: Upscaler, device: str) -> Any:
    """The spandrel ``ImageModelDescriptor`` of a ``.safetensors`` upscaler, on ``device``
    (half precision on a GPU when the architecture supports it)."""
    import spandrel
    import torch
    from safetensors.torch import load_file

    if upscaler.path.suffix.lower() != ".safetensors":  # listing never offers another file
        raise Unsupported(f"`{upscaler.path.name}` is not a .safetensors file.", field="model")
    state = load_file(str(upscaler.path), device="cpu")
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as exc:
        raise EngineError(
            f"spandrel could not load the upscaler `{upscaler.name}`: {exc}", field="model"
        ) from exc
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.architecture.id != "ESRGAN":
        raise EngineError(f"`{upscaler.name}` did not load as an ESRGAN upscaler.", field="model")
    if model.scale != upscaler.scale:
        raise EngineError(
            f"`{upscaler.name}` loaded as x{model.scale}, its header says x{upscaler.scale}.",
            field="model",
        )
    half = device.startswith("cuda") and model.supports_half
    model.to(torch.device(device)).eval()
    if half:
        model.half()
    return model


def tile_fn(model: Any, device: str) -> Any:
    """A function for ``tiles.run_tiled``: an H x W x 3 uint8 tile in, its upscale (float,
    0..255) out."""
    import torch

    dtype = torch.float16 if device.startswith("cuda") and model.supports_half else torch.float32

    def run(tile: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tile)).to(device)
        x = x.permute(2, 0, 1).unsqueeze(0).to(dtype) / 255.0
        with torch.inference_mode():
            y = model(x)
        out: np.ndarray = (y[0].permute(1, 2, 0).float() * 255.0).cpu().numpy()
        return out

    return run
