"""ControlNets for one job: weight-free preprocessors for their pictures, the models themselves
(single original-layout files with the configs the project ships, or diffusers folders), and
the pipeline arguments that put them to work.

Preprocessors (OpenCV), each turning the picture a bridge sent into what ControlNets of that
type were trained on:

    none       the picture as it is
    canny      edges: Canny with thresholds from the picture's own median brightness
    lineart    a drawing's lines as white on black, whichever way round they were drawn
    scribble   the same lines, binarised and thickened (scribble ControlNets want bold strokes)
    depth      passed through as given, as grey (a host's depth pass: near is bright)
    tile       the picture blurred by an 8x down-and-up scale (tile ControlNets add the detail)

A control with strength 0 is left out of the job entirely, so the picture is exactly the
unguided one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brushlink.plugin.errors import EngineError
from brushlink.plugin.regions import Box
from brushlink.plugin.request import Control

from .addons import Addons, controlnet_family
from .loading import CONFIGS


def _rgb(rgba: np.ndarray) -> np.ndarray:
    """RGB over black: a control picture's transparent parts carry no guidance."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3].astype(np.float32) * alpha).astype(np.uint8)


def _grey(rgba: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(_rgb(rgba), cv2.COLOR_RGB2GRAY)


def _three(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def canny(rgba: np.ndarray) -> np.ndarray:
    grey = cv2.GaussianBlur(_grey(rgba), (0, 0), 1.0)
    median = float(np.median(grey))
    low, high = int(max(0, 0.66 * median)), int(min(255, 1.33 * median))
    return _three(cv2.Canny(grey, max(low, 10), max(high, 30)))


def lineart(rgba: np.ndarray) -> np.ndarray:
    """White lines on black: a drawing of dark lines on a light ground is inverted."""
    grey = _grey(rgba)
    if float(np.median(grey)) > 127:  # mostly light: the lines are the dark part
        grey = 255 - grey
    low, high = np.percentile(grey, (5, 99.5))
    stretched = np.clip((grey.astype(np.float32) - low) * 255.0 / max(high - low, 1.0), 0, 255)
    return _three(stretched.astype(np.uint8))


def scribble(rgba: np.ndarray) -> np.ndarray:
    lines = lineart(rgba)[..., 0]
    _, binary = cv2.threshold(lines, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    width = max(1, round(max(binary.shape) / 256))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return _three(cv2.dilate(binary, kernel))


def depth(rgba: np.ndarray) -> np.ndarray:
    return _three(_grey(rgba))


def tile(rgba: np.ndarray) -> np.ndarray:
    rgb = _rgb(rgba)
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _rgb,
    "canny": canny,
    "lineart": lineart,
    "scribble": scribble,
    "depth": depth,
    "tile": tile,
}


def control_picture(
    rgba: np.ndarray, control: Control, box: Box | None, size: tuple[int, int]
) -> Any:
    """The picture a ControlNet sees: cropped like the job (an inpaint's region), preprocessed,
    at the size the pipeline runs at."""
    from PIL import Image

    if box is not None:
        rgba = rgba[box.y : box.bottom, box.x : box.right]
    picture = PREPROCESSORS[control.preprocessor](rgba)
    return Image.fromarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA))


class ControlNets:
    """Loaded ControlNets, the few most recent kept (they are a third of a UNet each)."""

    KEEP = 3

    def __init__(self, addons: Addons) -> None:
        self.addons = addons
        self._loaded: OrderedDict[tuple[Path, float], Any] = OrderedDict()

    def get(self, name: str, field: str, device: Any, dtype: Any) -> Any:
        path = self.addons.path("controlnet", name, field)
        key = (path, path.stat().st_mtime)
        if key not in self._loaded:
            model = self._load(path, name, field)
            self._loaded[key] = model.to(device, dtype)
            while len(self._loaded) > self.KEEP:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(key)
        return self._loaded[key]

    def _load(self, path: Path, name: str, field: str) -> Any:
        from diffusers import ControlNetModel

        try:
            if path.is_dir():
                return ControlNetModel.from_pretrained(
                    str(path), local_files_only=True, use_safetensors=True
                )
            side = path.with_name(path.stem + ".config")
            config = (
                side
                if (side / "config.json").is_file()
                else CONFIGS / (f"controlnet-{controlnet_family(path)}")
            )
            return ControlNetModel.from_single_file(
                str(path), config=str(config), local_files_only=True
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EngineError(
                f"The ControlNet `{name}` could not be loaded: {exc}", field=field
            ) from exc


def active(controls: list[Control]) -> list[tuple[int, Control]]:
    """The controls that guide at all (strength above 0), with their position in the request."""
    return [(i, c) for i, c in enumerate(controls) if c.strength > 0]


def guided(
    pipe: Any,
    task: str,
    job_controls: list[Control],
    pictures: dict[int, np.ndarray],
    nets: ControlNets,
    box: Box | None,
    size: tuple[int, int],
) -> tuple[Any, dict[str, Any]]:
    """The pipeline to run and its extra arguments: ``pipe`` itself when no control guides,
    else a ControlNet pipeline sharing ``pipe``'s modules, with the controls' pictures."""
    controls = active(job_controls)
    if not controls:
        return pipe, {}
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
    )

    device, dtype = pipe.unet.device, pipe.unet.dtype
    models = [nets.get(c.model, f"controls[{i}].model", device, dtype) for i, c in controls]
    images = [control_picture(pictures[c.image], c, box, size) for _, c in controls]
    cls = {
        "txt2img": AutoPipelineForText2Image,
        "img2img": AutoPipelineForImage2Image,
        "inpaint": AutoPipelineForInpainting,
    }[task]
    single = len(models) == 1

    def one(values: list[Any]) -> Any:
        return values[0] if single else values

    try:
        with_nets = cls.from_pipe(pipe, controlnet=one(models))
    except (ValueError, KeyError) as exc:
        raise EngineError(f"This checkpoint cannot run ControlNets for `{task}`: {exc}") from exc
    with_nets.set_progress_bar_config(disable=True)
    return with_nets, {
        "image" if task == "txt2img" else "control_image": one(images),
        "controlnet_conditioning_scale": one([c.strength for _, c in controls]),
        "control_guidance_start": one([c.start for _, c in controls]),
        "control_guidance_end": one([c.end for _, c in controls]),
    }
