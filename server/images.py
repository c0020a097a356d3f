"""Images at the server's edge: PNG files or raw pixels <-> numpy, with limits checked before
decoding."""

from __future__ import annotations

import zlib
from typing import cast

import cv2
import numpy as np

from brushlink.plugin import png as pure_png
from brushlink.plugin.errors import ImageTooLarge, InvalidImage
from brushlink.plugin.frames import Image, Pixels, decode_frame, encode_frame


def check_size(data: Image, max_pixels: int, slot: str) -> tuple[int, int]:
    """Width and height from the PNG header alone (or the raw frame's own size): a pixel bomb
    is refused before allocation."""
    if isinstance(data, Pixels):
        width, height = data.width, data.height
    else:
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


def decode_rgba(data: Image, slot: str) -> np.ndarray:
    """PNG or raw pixels -> H x W x 4 uint8 RGBA. Truncated or corrupt files raise InvalidImage."""
    if isinstance(data, Pixels):
        return pixels_to_rgba(data)
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


def pixels_to_rgba(pixels: Pixels) -> np.ndarray:
    """Raw pixels -> H x W x 4 uint8 RGBA (one numpy copy)."""
    flat = np.frombuffer(pixels.data, np.uint8)
    if pixels.layout == "gray8":
        return cv2.cvtColor(flat.reshape(pixels.height, pixels.width), cv2.COLOR_GRAY2RGBA)
    array = flat.reshape(pixels.height, pixels.width, 4)
    if pixels.layout == "bgra8":
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return array.copy()


def encode_image(image: np.ndarray, encoding: str) -> Image:
    """RGBA uint8 -> what a connection reads: a PNG file, or raw pixels in its layout."""
    if encoding == "png":
        return encode_rgba(image)
    height, width = image.shape[:2]
    if encoding == "bgra8":
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    return Pixels(width, height, np.ascontiguousarray(image).tobytes(), encoding)


def transcode(frames: list[str | bytes], encoding: str) -> list[str | bytes]:
    """A job's final frames for a connection that reads them otherwise (a remote client
    collecting a result first made for a loopback one): raw result frames as PNG."""
    if encoding != "png":
        return frames
    out: list[str | bytes] = []
    for frame in frames:
        if isinstance(frame, bytes):
            decoded = decode_frame(frame)
            if decoded.encoding != "png":
                png = encode_rgba(pixels_to_rgba(cast(Pixels, decoded.image())))
                frame = encode_frame(decoded.job_id, decoded.slot, decoded.index, png)
        out.append(frame)
    return out
