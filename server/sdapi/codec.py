"""Images at the A1111 door: base64 in (raw or ``data:`` URLs), base64 PNG out.

Limits come before any decoding, as at the websocket: the base64 text's length against
``max_message_bytes`` (before it is decoded), then the pixel count from the file's header (PNG's
IHDR, JPEG's frame header, another format's header read by Pillow without its pixels) against
``max_pixels``. PNG files go to the App as they came; others are converted to PNG. Functions
here that decode pixels are slow: callers run them off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from brushlink.plugin import png as pure_png
from brushlink.plugin.errors import ImageTooLarge, InvalidImage, MessageTooBig

from ..config import Limits
from ..images import encode_rgba, imdecode_rgba, mask_from_rgba

JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
MAX_CONTEXT = 4.0  # the request's inpaint.context limit


def from_base64(text: str, limits: Limits, field: str) -> bytes:
    """The file a base64 string (or ``data:`` URL) holds, refused by its length first."""
    if not isinstance(text, str) or not text:
        raise InvalidImage(f"`{field}` must be a base64 image.", field=field)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    decoded_size = len(text) * 3 // 4
    if decoded_size > limits.max_message_bytes:
        raise MessageTooBig(
            f"`{field}` holds about {decoded_size / 2**20:.1f} MiB; this server accepts images "
            f"up to {limits.max_message_bytes / 2**20:.1f} MiB.",
            field=field,
        )
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"`{field}` is not valid base64.", field=field) from exc


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidImage("The JPEG file is corrupt.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in JPEG_FRAMES and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise InvalidImage("The JPEG file has no frame header.")


def image_size(data: bytes, field: str) -> tuple[int, int]:
    """Width and height from the header alone."""
    try:
        if data.startswith(pure_png.SIGNATURE):
            return pure_png.read_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:  # reads the header, not the pixels
                return image.size
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"The `{field}` image has too many pixels.", field=field) from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InvalidImage(f"`{field}` is not an image file.", field=field) from exc
    except InvalidImage as exc:
        raise InvalidImage(f"`{field}`: {exc.message}", field=field) from exc


def check_pixels(data: bytes, limits: Limits, field: str) -> tuple[int, int]:
    width, height = image_size(data, field)
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"The `{field}` image is {width}x{height} = {width * height:,} pixels; this server "
            f"accepts at most {limits.max_pixels:,}.",
            field=field,
        )
    return width, height


def read_image(text: str, limits: Limits, field: str) -> bytes:
    """A base64 image, checked against the limits, as PNG bytes (PNG files as they came)."""
    data = from_base64(text, limits, field)
    check_pixels(data, limits, field)
    if data.startswith(pure_png.SIGNATURE):
        return data
    return encode_rgba(decode(data, field))


def decode(data: bytes, field: str) -> np.ndarray:
    """A checked image file -> H x W x 4 RGBA."""
    rgba = imdecode_rgba(data)
    if rgba is None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                rgba = np.asarray(image.convert("RGBA"))
        except (OSError, ValueError) as exc:
            raise InvalidImage(f"`{field}` could not be decoded.", field=field) from exc
    return rgba


def to_base64(png: bytes, parameters: str | None = None) -> str:
    """Raw base64 of a PNG (no ``data:`` prefix: webuiapi decodes the string as it is), with
    A1111's ``parameters`` text chunk when given."""
    if parameters:
        png = pure_png.add_text(png, "parameters", parameters)
    return base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------- img2img


@dataclass
class Prepared:
    """An img2img's pictures as a brushlink job takes them."""

    image: bytes
    mask: bytes | None
    context: float | None  # inpaint.context, from the mask's box and the padding


def _fit(pixels: np.ndarray, width: int, height: int, mode: int, interpolation: int) -> np.ndarray:
    """A1111's resize modes: 0 just resize, 1 crop and resize, 2 resize and fill (the border
    stretched from the picture's edge), 3 (latent upscale) as 0."""
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    if mode not in (1, 2):
        return cv2.resize(pixels, (width, height), interpolation=interpolation)
    scale = max(width / w, height / h) if mode == 1 else min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    scaled = cv2.resize(pixels, size, interpolation=interpolation)
    if mode == 1:
        x, y = (size[0] - width) // 2, (size[1] - height) // 2
        return scaled[y : y + height, x : x + width]
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    return cv2.copyMakeBorder(
        scaled, top, height - size[1] - top, left, width - size[0] - left, cv2.BORDER_REPLICATE
    )


def _context(mask: np.ndarray, padding: int, only_masked: bool) -> float | None:
    """inpaint.context (a share of the region's diagonal on every side) for A1111's "only
    masked" padding in pixels, or for "whole picture" the share that reaches every edge."""
    points = cv2.findNonZero((mask > 0).astype(np.uint8))
    if points is None:
        return None
    x, y, w, h = cv2.boundingRect(points)
    diagonal = math.hypot(w, h)
    if only_masked:
        reach = float(padding)
    else:
        height, width = mask.shape[:2]
        reach = float(max(x, y, width - x - w, height - y - h))
    return round(min(MAX_CONTEXT, reach / diagonal), 4)


def prepare_img2img(
    image: bytes,
    mask: bytes | None,
    size: tuple[int, int] | None,
    resize_mode: int,
    invert: bool,
    padding: int,
    only_masked: bool,
) -> Prepared:
    """The init image (and mask) at the requested size; the mask inverted when asked."""
    width, height = image_size(image, "init_images")
    if size is not None and (width, height) != size:
        shrinking = size[0] * size[1] < width * height
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
        rgba = _fit(decode(image, "init_images"), size[0], size[1], resize_mode, interp)
        image = encode_rgba(np.ascontiguousarray(rgba))
        width, height = size
    if mask is None:
        return Prepared(image, None, None)
    grey = mask_from_rgba(decode(mask, "mask"))
    if grey.shape[:2] != (height, width):
        grey = _fit(grey, width, height, resize_mode, cv2.INTER_LINEAR)
    if invert:
        grey = 255 - grey
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(grey))
    if not ok:  # pragma: no cover - OpenCV always encodes a grey image
        raise InvalidImage("The mask could not be encoded.", field="mask")
    return Prepared(image, encoded.tobytes(), _context(grey, padding, only_masked))
