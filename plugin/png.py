"""PNG encode/decode in pure Python (zlib + struct): Krita's and Blender's Python have no Pillow.

Decoding covers what bridges and the server send each other: 8-bit greyscale, grey+alpha, RGB,
RGBA and palette images, non-interlaced. Everything decodes to RGBA8 rows, top row first.
``read_size`` reads only the IHDR chunk, so a pixel limit can be checked before any allocation.
``add_text`` and ``read_text`` write and read text chunks (the generation parameters A1111's
tools look for) without touching the pixels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from .errors import InvalidImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _encode(
    width: int, height: int, pixels: bytes, channels: int, colour: int, level: int
) -> bytes:
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(
            f"expected {stride * height} bytes for {width}x{height}, got {len(pixels)}"
        )
    raw = bytearray()
    view = memoryview(pixels)
    for y in range(height):
        raw.append(0)  # row filter: none, so decoding needs no per-byte Python loop
        raw += view[y * stride : (y + 1) * stride]
    return assemble(width, height, colour, zlib.compress(bytes(raw), level))


def assemble(width: int, height: int, colour: int, idat: bytes) -> bytes:
    """A whole 8-bit PNG file from its compressed, filtered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"".join([SIGNATURE, chunk(b"IHDR", ihdr), chunk(b"IDAT", idat), chunk(b"IEND", b"")])


def encode_rgba(width: int, height: int, rgba: bytes, *, level: int = 1) -> bytes:
    """Encode RGBA8 pixels (top row first) as PNG. Level 1: fast, still small for art."""
    return _encode(width, height, rgba, 4, 6, level)


def encode_gray(width: int, height: int, gray: bytes, *, level: int = 1) -> bytes:
    """Encode 8-bit greyscale (e.g. a selection mask) as PNG."""
    return _encode(width, height, gray, 1, 0, level)


def read_header(png: bytes) -> tuple[int, int, int, int, int]:
    """(width, height, bit depth, colour type, interlace) from the IHDR chunk alone."""
    if len(png) < 33 or png[:8] != SIGNATURE or png[12:16] != b"IHDR":
        raise InvalidImage("The image is not a PNG file.")
    width, height, depth, colour, _comp, _filter, interlace = struct.unpack(">IIBBBBB", png[16:29])
    if width == 0 or height == 0:
        raise InvalidImage("The PNG declares an empty image.")
    return width, height, depth, colour, interlace


def read_size(png: bytes) -> tuple[int, int]:
    width, height, *_ = read_header(png)
    return width, height


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 8
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        if len(data) != length or pos + 12 + length > len(png):
            raise InvalidImage("The PNG file is truncated.")
        yield kind, data
        if kind == b"IEND":
            return
        pos += 12 + length
    raise InvalidImage("The PNG file is truncated (no end chunk).")


def add_text(png: bytes, key: str, value: str) -> bytes:
    """The same PNG with a text chunk after its header: ``tEXt`` when the value is Latin-1,
    else ``iTXt`` (UTF-8), as Pillow writes them."""
    read_header(png)
    keyword = key.encode("latin-1")[:79]
    try:
        body = chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        body = chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))
    end_of_header = 8 + 12 + 13
    return png[:end_of_header] + body + png[end_of_header:]


def read_text(png: bytes) -> dict[str, str]:
    """Every ``tEXt``, ``zTXt`` and ``iTXt`` chunk as key -> text (the pixels are not read)."""
    read_header(png)
    found: dict[str, str] = {}
    for kind, data in _chunks(png):
        key, _, rest = data.partition(b"\x00")
        try:
            if kind == b"tEXt":
                found[key.decode("latin-1")] = rest.decode("latin-1")
            elif kind == b"zTXt" and rest[:1] == b"\x00":
                found[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                compressed, text = rest[:1] == b"\x01", rest[2:]
                text = text.split(b"\x00", 2)[-1]  # after the language tag and translated key
                raw = zlib.decompress(text) if compressed else text
                found[key.decode("latin-1")] = raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError):
            continue
    return found


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(data: bytes, width: int, height: int, bpp: int) -> bytearray:
    stride = width * bpp
    out = bytearray(stride * height)
    prev = bytearray(stride)
    pos = 0
    for y in range(height):
        if pos + 1 + stride > len(data):
            raise InvalidImage("The PNG pixel data is truncated.")
        ftype = data[pos]
        line = bytearray(data[pos + 1 : pos + 1 + stride])
        pos += 1 + stride
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((x + p) & 0xFF for x, p in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        elif ftype != 0:
            raise InvalidImage(f"The PNG uses an unknown row filter ({ftype}).")
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return out


def decode_rgba(png: bytes) -> tuple[int, int, bytes]:
    """Decode a PNG to (width, height, RGBA8 bytes)."""
    width, height, depth, colour, interlace = read_header(png)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise InvalidImage("Only 8-bit, non-interlaced PNGs can be decoded here.")
    idat = bytearray()
    palette = b""
    alpha = b""
    for kind, data in _chunks(png):
        if kind == b"IDAT":
            idat += data
        elif kind == b"PLTE":
            palette = data
        elif kind == b"tRNS":
            alpha = data
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise InvalidImage("The PNG pixel data is corrupt.") from exc
    channels = _CHANNELS[colour]
    px = _unfilter(raw, width, height, channels)
    if colour == 6:
        return width, height, bytes(px)
    out = bytearray(width * height * 4)
    if colour == 2:
        out[0::4], out[1::4], out[2::4] = px[0::3], px[1::3], px[2::3]
        out[3::4] = b"\xff" * (width * height)
    elif colour == 0:
        out[0::4] = out[1::4] = out[2::4] = px
        out[3::4] = b"\xff" * (width * height)
    elif colour == 4:
        out[0::4] = out[1::4] = out[2::4] = px[0::2]
        out[3::4] = px[1::2]
    else:  # palette
        for i, index in enumerate(px):
            out[i * 4 : i * 4 + 3] = palette[index * 3 : index * 3 + 3]
            out[i * 4 + 3] = alpha[index] if index < len(alpha) else 255
    return width, height, bytes(out)
