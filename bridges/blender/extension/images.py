"""Pixels between Blender images and PNG bytes.

Blender stores rows bottom-up, PNG top-down: every function here takes and returns arrays with
the top row first (H x W x 4 float32 in [0, 1], straight alpha) and flips at the ``bpy`` edge.
numpy is the one used by Blender itself (every Blender build ships it); the bridge adds nothing.
Float images hold linear values; they are converted to and from sRGB so the server always sees
the colours the artist sees.
"""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

from brushlink.plugin.png import encode_gray, encode_rgba


def _is_linear(image: bpy.types.Image) -> bool:
    return image.is_float and image.colorspace_settings.name not in ("sRGB", "Non-Color")


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((srgb + 0.055) / 1.055, 2.4))


def read_rgba(image: bpy.types.Image) -> np.ndarray:
    """The image's pixels as H x W x 4 float32, top row first."""
    width, height = image.size
    channels = image.channels
    if width == 0 or height == 0:
        raise ValueError(f"The image “{image.name}” has no pixels (is its file missing?).")
    flat = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(flat)
    px = flat.reshape(height, width, channels)[::-1]
    if channels == 4:
        rgba = px.copy()
    elif channels == 3:
        rgba = np.concatenate([px, np.ones((height, width, 1), np.float32)], axis=2)
    elif channels == 2:  # grey + alpha
        rgba = np.concatenate([px[..., :1].repeat(3, axis=2), px[..., 1:2]], axis=2)
    else:
        rgba = np.concatenate([px[..., :1].repeat(3, axis=2), np.ones_like(px[..., :1])], axis=2)
    if _is_linear(image):
        rgba[..., :3] = _to_srgb(np.clip(rgba[..., :3], 0.0, 1.0))
    return rgba


def write_rgba(image: bpy.types.Image, rgba: np.ndarray) -> None:
    """Replace the image's pixels with H x W x 4 floats (top row first), resizing if needed."""
    height, width = rgba.shape[:2]
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    px = np.ascontiguousarray(rgba[::-1], dtype=np.float32)
    if _is_linear(image):
        px = px.copy()
        px[..., :3] = _to_linear(px[..., :3])
    channels = image.channels
    if channels != 4:
        px = px[..., :channels] if channels >= 3 else px[..., :1]
    image.pixels.foreach_set(np.ascontiguousarray(px).ravel())
    image.update()


def to_bytes(rgba: np.ndarray) -> bytes:
    """Floats in [0, 1] to RGBA8 bytes (exact for values that came from 8-bit images)."""
    return np.clip(rgba * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes()


def image_png(image: bpy.types.Image, *, opaque: bool = False) -> bytes:
    """Encode a Blender image as PNG for the server; ``opaque`` drops the alpha channel's holes."""
    rgba = read_rgba(image)
    if opaque:
        rgba[..., 3] = 1.0
    height, width = rgba.shape[:2]
    return encode_rgba(width, height, to_bytes(rgba))


def array_png(rgba: np.ndarray) -> bytes:
    height, width = rgba.shape[:2]
    return encode_rgba(width, height, to_bytes(rgba))


def mask_png(mask: np.ndarray) -> bytes:
    """An H x W mask in [0, 1] (1 = regenerate) as an 8-bit greyscale PNG."""
    height, width = mask.shape
    gray = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes()
    return encode_gray(width, height, gray)


def decode_png(png: bytes) -> np.ndarray:
    """Decode PNG bytes with Blender's own reader (fast, any PNG flavour); top row first."""
    with tempfile.TemporaryDirectory(prefix="brushlink-") as folder:
        path = os.path.join(folder, "decode.png")
        with open(path, "wb") as f:
            f.write(png)
        image = bpy.data.images.load(path, check_existing=False)
        try:
            image.colorspace_settings.name = "sRGB"
            return read_rgba(image)
        finally:
            bpy.data.images.remove(image)


def new_image(name: str, width: int, height: int, *, non_color: bool = False) -> bpy.types.Image:
    image = bpy.data.images.new(name[:63], width, height, alpha=True)
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    return image


def pack(image: bpy.types.Image) -> None:
    """Embed the pixels in the .blend (as PNG), so the texture travels with the file."""
    image.pack()
