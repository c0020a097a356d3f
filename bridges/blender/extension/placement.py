"""Where each operator's results go. Everything here runs on Blender's main thread.

A placement changes nothing until the final result unless a preview arrives; whatever a preview
changed, ``discard`` puts back, so a failed or cancelled job leaves the file as it was.
"""

from __future__ import annotations

import bpy
import numpy as np

from brushlink.plugin.errors import ImageMismatch
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import Request

from . import images, maps, materials
from .worker import Placement

# Pixels before each in-place inpaint, newest last, so "Revert Inpaint" can step back.
HISTORY: dict[str, list[np.ndarray]] = {}
HISTORY_DEPTH = 4


def _fit(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize: previews are small and only need to look right."""
    h, w = rgba.shape[:2]
    if (w, h) == (width, height):
        return rgba
    rows = (np.arange(height) * h // height).clip(0, h - 1)
    cols = (np.arange(width) * w // width).clip(0, w - 1)
    return rgba[rows][:, cols]


def best(result: Result) -> tuple[np.ndarray, int | None]:
    found = result.images
    if not found or found[0].data is None:
        raise ImageMismatch("The server's result holds no image.")
    return images.decode_png(found[0].data), found[0].seed


def _show_in_image_editors(old: bpy.types.Image | None, new: bpy.types.Image) -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR" and (old is None or area.spaces.active.image == old):
                area.spaces.active.image = new


class TextureFill(Placement):
    label = "Texture fill"

    def __init__(
        self, obj: bpy.types.Object, request: Request, width: int, height: int, derived: bool
    ):
        self.object_name = obj.name
        self.request = request
        self.prompt = request.prompt
        self.width, self.height = width, height
        self.derived = derived
        self.image: bpy.types.Image | None = None
        self.made: list[bpy.types.ID] = []  # datablocks this job created, for discard
        self.slots_before: int | None = None

    def _image(self) -> bpy.types.Image:
        if self.image is None:
            name = f"Texture: {self.prompt or 'untitled'}"
            self.image = images.new_image(name, self.width, self.height)
        return self.image

    def preview(self, png: bytes) -> None:
        images.write_rgba(self._image(), _fit(images.decode_png(png), self.width, self.height))

    def result(self, result: Result) -> str:
        obj = bpy.data.objects.get(self.object_name)
        if obj is None:
            raise ImageMismatch(f"The object “{self.object_name}” is gone.")
        rgba, seed = best(result)
        height, width = rgba.shape[:2]
        image = self._image()
        images.write_rgba(image, rgba)
        images.pack(image)
        # Provenance on the image (Custom Properties): how to make it again.
        # The seed is text: ID properties hold 32-bit signed integers, seeds go to 2^32 - 1.
        image["brushlink"] = {
            "prompt": self.request.prompt,
            "negative_prompt": self.request.negative_prompt,
            "model": str(result.metadata.get("model", self.request.model or "")),
            "seed": "" if seed is None else str(seed),
            "tile": self.request.tile,
            "steps": self.request.steps or 0,
        }
        self.slots_before = len(obj.material_slots)
        material, created = materials.target_material(obj, f"brushlink {self.prompt}".strip())
        if created:
            self.made.append(material)
        materials.wire_base_color(obj, material, image)
        if self.derived:
            derived = maps.derive_maps(rgba, wrap=self.request.tile == "xy")
            made = {
                "normal": derived.normal,
                "roughness": maps.grey_rgba(derived.roughness),
                "height": maps.grey_rgba(derived.height),
                "occlusion": maps.grey_rgba(derived.occlusion),
            }
            wired = {}
            for kind, pixels in made.items():
                extra = images.new_image(f"{image.name} {kind}", width, height, non_color=True)
                images.write_rgba(extra, pixels)
                images.pack(extra)
                self.made.append(extra)
                wired[kind] = extra
            materials.wire_derived(obj, material, wired)
        seed_text = f", seed {seed}" if seed is not None else ""
        return f"“{image.name}” ({width}×{height}{seed_text}) on material “{material.name}”."

    def discard(self) -> None:
        """Remove what this job made (also after a failure half-way through placing)."""
        for block in reversed(self.made):
            collection = (
                bpy.data.materials if isinstance(block, bpy.types.Material) else bpy.data.images
            )
            collection.remove(block)
        self.made.clear()
        obj = bpy.data.objects.get(self.object_name)
        if obj is not None and self.slots_before is not None:
            while len(obj.material_slots) > self.slots_before:
                obj.data.materials.pop()
        if self.image is not None:
            bpy.data.images.remove(self.image)
            self.image = None


class Inpaint(Placement):
    """Regenerates the masked region of an image in place; unmasked pixels stay bit-identical."""

    label = "Inpaint"

    def __init__(self, image: bpy.types.Image, original: np.ndarray, mask: np.ndarray):
        self.image_name = image.name
        self.original = original
        self.mask = mask[..., None]  # H x W x 1 in [0, 1], 1 = regenerate
        self.previewed = False

    def _composite(self, generated: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """The new pixels over the original through ``weight`` (H x W x 1 in [0, 1])."""
        new = generated.copy()
        new[..., 3] = 1.0  # what is regenerated is opaque (a transparent hole gets filled)
        out = self.original * (1.0 - weight) + new * weight
        # Where the weight is 0 the original values are kept exactly, not recomputed.
        keep = weight[..., 0] <= 0.0
        out[keep] = self.original[keep]
        return out

    def _target(self) -> bpy.types.Image:
        image = bpy.data.images.get(self.image_name)
        if image is None:
            raise ImageMismatch(f"The image “{self.image_name}” is gone.")
        return image

    def preview(self, png: bytes) -> None:
        height, width = self.original.shape[:2]
        generated = _fit(images.decode_png(png), width, height)
        images.write_rgba(self._target(), self._composite(generated, self.mask))
        self.previewed = True

    def result(self, result: Result) -> str:
        image = self._target()
        generated, _ = best(result)
        if generated.shape != self.original.shape:
            raise ImageMismatch(
                f"The server returned {generated.shape[1]}×{generated.shape[0]} pixels for a "
                f"{self.original.shape[1]}×{self.original.shape[0]} image."
            )
        # the result is a layer: the new pixels, their blend weight (grown, feathered) as alpha
        images.write_rgba(image, self._composite(generated, generated[..., 3:4]))
        if image.packed_file is not None:
            images.pack(image)  # keep the embedded copy in step with the pixels
        history = HISTORY.setdefault(image.name, [])
        history.append(self.original)
        del history[:-HISTORY_DEPTH]
        share = float((self.mask > 0).mean()) * 100
        return f"Inpainted {share:.1f} % of “{image.name}”."

    def discard(self) -> None:
        if self.previewed and (image := bpy.data.images.get(self.image_name)) is not None:
            images.write_rgba(image, self.original)
            self.previewed = False


def revert_inpaint(image: bpy.types.Image) -> bool:
    """Put back the pixels from before the last inpaint of this image; False if there is none."""
    history = HISTORY.get(image.name)
    if not history:
        return False
    images.write_rgba(image, history.pop())
    if image.packed_file is not None:
        images.pack(image)
    return True


class Style(Placement):
    """Restyles an image into a new image named after the source and the style."""

    label = "Style"

    def __init__(self, source: bpy.types.Image, look: str, note: str = ""):
        self.source_name = source.name
        self.look = look
        self.note = note  # added to the report (e.g. what guided it)
        self.image: bpy.types.Image | None = None

    def result(self, result: Result) -> str:
        rgba, _ = best(result)
        height, width = rgba.shape[:2]
        image = images.new_image(f"{self.source_name} ({self.look})", width, height)
        images.write_rgba(image, rgba)
        images.pack(image)
        self.image = image
        _show_in_image_editors(bpy.data.images.get(self.source_name), image)
        return f"Restyled “{self.source_name}” into “{image.name}”{self.note}."
