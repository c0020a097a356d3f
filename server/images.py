"""Images at the server's edge: PNG bytes <-> numpy, with limits checked before decoding."""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from brushlink.plugin import png as pure_png
from brushlink.plugin.errors import ImageTooLarge, InvalidImage


def check_size(data: bytes, max_pixels: int, slot: str) -> tuple[int, int]:
    """Width and height from the PNG header alone: a pixel bomb is refused before allocation."""
    try:
        width, height = pure_png.read_size(data)
    except InvalidImage as exc:
        raise InvalidImage(f"The `{slot}` image is not a PNG file.", field=slot) from exc
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The `{slot}` image is {width}x{height} = {width * height:,} pixels; "
            f"this server accepts at most {max_pixels:,}.",
            field=slot,
        )
    return width, height


def decode_rgba(data: bytes, slot: str) -> np.ndarray:
    """PNG -> H x W x 4 uint8 RGBA. Truncated or corrupt files raise InvalidImage."""
    if not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        # OpenCV decodes a truncated PNG into a partly grey image without complaint.
        raise InvalidImage(f"The `{slot}` image is truncated or not a complete PNG.", field=slot)
    rgba = imdecode_rgba(data)
    if rgba is None:
        raise InvalidImage(f"The `{slot}` image could not be decoded.", field=slot)
    return rgba


def imdecode_rgba(data: bytes) -> np.ndarray | None:
    """Any image file OpenCV reads -> H x W x 4 uint8 RGBA, or None when it cannot."""
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        return None
    if array.dtype != np.uint8:
        # 16-bit: keep the high byte, in place (a float copy of a 4096^2 RGBA image would
        # cost half a gigabyte)
        np.right_shift(array, 8, out=array)
        array = array.astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGBA)
    if array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)


def mask_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """A mask image -> H x W uint8, 255 = regenerate.

    Grey masks use their brightness; a mask with any transparency uses its alpha (a painted
    alpha mask in Blender or Krita), so both conventions a bridge may send work.
    """
    if (rgba[..., 3] < 255).any():
        return rgba[..., 3].copy()
    return cv2.cvtColor(rgba[..., :3], cv2.COLOR_RGB2GRAY)


def encode_rgba(image: np.ndarray, level: int = 1) -> bytes:
    """RGBA uint8 -> PNG with row filter 0 (none), so hosts decode it fast in pure Python."""
    if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
        raise ValueError(f"expected H x W x 4 uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    rows = np.zeros((height, width * 4 + 1), np.uint8)
    rows[:, 1:] = image.reshape(height, width * 4)
    return pure_png.assemble(width, height, 6, zlib.compress(rows.tobytes(), level))
