"""Reading dropped files into what the wire carries (PNG), and writing results in the recipe's format.

The hot folder runs inside the brushlink install, where Pillow exists, so it accepts PNG, JPEG,
WebP and TIFF and converts them to PNG for the request. The pixel count is checked from the
header before anything is decoded, against the limit the server announced in ``welcome``.
Problems raise the protocol's own error classes, with a sentence that names the file.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from brushlink.plugin.errors import ImageTooLarge, InvalidField, InvalidImage

# Without a limit from the server, refuse what Pillow itself calls a decompression bomb.
FALLBACK_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def read_image(path: Path, max_pixels: int | None = None, *, mode: str | None = None) -> bytes:
    """Read an image file and return PNG bytes (RGB or RGBA; ``mode="L"`` for masks)."""
    limit = max_pixels or FALLBACK_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > limit:
                    raise ImageTooLarge(_too_large(path, width, height, limit))
                opened.load()
                im = _convert(ImageOps.exif_transpose(opened), mode)
                out = io.BytesIO()
                im.save(out, format="PNG", compress_level=1)
                return out.getvalue()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{path.name} is too large to open safely ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            f"{path.name} is not an image that can be read (PNG, JPEG, WebP or TIFF expected)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(
            f"{path.name} is truncated or damaged and cannot be decoded ({exc})."
        ) from exc


def _too_large(path: Path, width: int, height: int, limit: int) -> str:
    return (
        f"{path.name} is too large: {width} x {height} = {width * height:,} pixels, "
        f"and the server accepts at most {limit:,} pixels. Scale it down and drop it again."
    )


def _convert(im: Image.Image, mode: str | None) -> Image.Image:
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if mode == "L":
        gray = im.convert("L")
        low, high = gray.getextrema()
        # White = regenerate. A mask saved as a transparent layer of one flat colour carries
        # its shape in the alpha channel instead.
        if has_alpha and low == high:
            return im.convert("RGBA").getchannel("A")
        return gray
    return im.convert("RGBA" if has_alpha else "RGB")


def image_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        return im.size


def encode_output(png: bytes, fmt: str, quality: int = 92) -> bytes:
    """A result PNG as the recipe's output format (png is passed through untouched)."""
    if fmt == "png":
        return png
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        out = io.BytesIO()
        if fmt == "jpg":
            # JPEG has no alpha: flatten onto white, as an artist would expect from an export.
            rgb: Image.Image = im
            if im.mode in ("RGBA", "LA"):
                rgb = Image.new("RGB", im.size, (255, 255, 255))
                rgb.paste(im, mask=im.getchannel("A"))
            rgb.convert("RGB").save(out, format="JPEG", quality=quality)
        elif fmt == "webp":
            im.save(out, format="WEBP", quality=quality)
        else:
            raise InvalidField(f"Unknown output format `{fmt}`.", field="format")
        return out.getvalue()


def read_prompts(path: Path) -> list[str]:
    """One prompt per non-empty line; lines starting with ``#`` are comments."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidField(f"{path.name} is not UTF-8 text ({exc}).", field="prompt") from exc
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise InvalidField(f"{path.name} holds no prompt (one prompt per line).", field="prompt")
    return prompts
