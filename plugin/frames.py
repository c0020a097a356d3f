"""Binary frames: a fixed 22-byte header naming the job, slot and encoding, then the image.

    offset  size  field
    0       2     magic b"BL"
    2       1     frame format version (1)
    3       1     slot code (SLOTS below)
    4       1     index within the slot (0..255; e.g. the n-th result)
    5       1     encoding (ENCODINGS below; 0, a PNG file, in protocol 1.0 and 1.1)
    6       16    job id: the 16 bytes of the job's UUID
    22      ...   payload: a PNG file, or raw pixels (8-byte size, then rows top first)

Images are never base64'd into JSON. On a loopback connection the fastest form is no form at
all: raw 8-bit pixels in the host's own channel order (Krita keeps B, G, R, A) cost a memory
copy where PNG costs a compression and a decompression on each side. Which encoding a
connection gets is negotiated in the handshake (docs/protocol.md, "Connecting").
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from . import png
from .errors import InvalidField, InvalidImage

MAGIC = b"BL"
FRAME_VERSION = 1
_HEADER = struct.Struct(">2sBBBB16s")
HEADER_SIZE = _HEADER.size
_SIZE = struct.Struct(">II")  # a raw payload's width and height

# Slots a client sends with a request, and slots the server sends back.
SLOTS: dict[str, int] = {
    "image": 1,  # the canvas crop / source image
    "mask": 2,  # soft mask, white = regenerate
    "reference": 3,  # style reference
    "input": 4,  # images to rank (index = position)
    "control": 5,  # control pictures (index = Control.image)
    "preview": 16,
    "result": 17,
}
SLOT_NAMES = {code: name for name, code in SLOTS.items()}
REQUEST_SLOTS = ("image", "mask", "reference", "input", "control")

# How a frame's payload holds its image; raw layouts are 8 bits a channel.
ENCODINGS: dict[str, int] = {"png": 0, "rgba8": 1, "bgra8": 2, "gray8": 3}
ENCODING_NAMES = {code: name for name, code in ENCODINGS.items()}
CHANNELS = {"rgba8": 4, "bgra8": 4, "gray8": 1}


@dataclass(frozen=True)
class Pixels:
    """Raw 8-bit pixels, rows top first: what a host has in memory, sent as it is."""

    width: int
    height: int
    data: bytes
    layout: str = "rgba8"  # rgba8 | bgra8 | gray8

    def __post_init__(self) -> None:
        if self.layout not in CHANNELS:
            raise InvalidImage(f"Unknown pixel layout `{self.layout}`.")
        expected = self.width * self.height * CHANNELS[self.layout]
        if self.width < 1 or self.height < 1 or len(self.data) != expected:
            raise InvalidImage(
                f"{self.width}x{self.height} {self.layout} pixels need {expected} bytes, not "
                f"{len(self.data)}."
            )

    def payload(self) -> bytes:
        return _SIZE.pack(self.width, self.height) + self.data

    def rgba(self) -> Pixels:
        """The same pixels as R, G, B, A (a swap of bytes, no per-pixel Python loop)."""
        if self.layout == "rgba8":
            return self
        if self.layout == "bgra8":
            out = bytearray(self.data)
            out[0::4], out[2::4] = self.data[2::4], self.data[0::4]
            return Pixels(self.width, self.height, bytes(out), "rgba8")
        out = bytearray(len(self.data) * 4)
        for channel in range(3):
            out[channel::4] = self.data
        out[3::4] = b"\xff" * len(self.data)
        return Pixels(self.width, self.height, bytes(out), "rgba8")

    def bgra(self) -> Pixels:
        rgba = self.rgba()
        out = bytearray(rgba.data)
        out[0::4], out[2::4] = rgba.data[2::4], rgba.data[0::4]
        return Pixels(self.width, self.height, bytes(out), "bgra8")


# An image as a bridge holds it: a PNG file's bytes, or raw pixels.
Image = bytes | Pixels


@dataclass(frozen=True)
class BinaryFrame:
    job_id: str
    slot: str
    index: int
    payload: bytes
    encoding: str = "png"

    def image(self) -> Image:
        """The frame's image: PNG bytes as they came, or its raw pixels."""
        if self.encoding == "png":
            return self.payload
        if len(self.payload) < _SIZE.size:
            raise InvalidImage(
                f"The `{self.slot}` frame's raw pixels have no size.", field=self.slot
            )
        width, height = _SIZE.unpack_from(self.payload)
        data = self.payload[_SIZE.size :]
        try:
            return Pixels(width, height, data, self.encoding)
        except InvalidImage as exc:
            raise InvalidImage(f"The `{self.slot}` frame: {exc.message}", field=self.slot) from exc


def job_id_bytes(job_id: str) -> bytes:
    try:
        return uuid.UUID(job_id).bytes
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidField("`job_id` must be a UUID.", field="job_id") from exc


def encode_frame(job_id: str, slot: str, index: int, image: Image) -> bytes:
    if slot not in SLOTS:
        raise InvalidField(f"Unknown image slot `{slot}`.", field="slot")
    if not 0 <= index < 256:
        raise InvalidField("A frame index must be 0..255.", field="index")
    if isinstance(image, Pixels):
        encoding, parts = (
            ENCODINGS[image.layout],
            [_SIZE.pack(image.width, image.height), image.data],
        )
    else:
        encoding, parts = ENCODINGS["png"], [image]
    header = _HEADER.pack(MAGIC, FRAME_VERSION, SLOTS[slot], index, encoding, job_id_bytes(job_id))
    return b"".join([header, *parts])  # one copy of the pixels, however large


def decode_frame(data: bytes) -> BinaryFrame:
    if len(data) < HEADER_SIZE:
        raise InvalidField("A binary frame is shorter than its 22-byte header.", field="frame")
    magic, version, slot_code, index, encoding, raw_id = _HEADER.unpack_from(data)
    if magic != MAGIC or version != FRAME_VERSION:
        raise InvalidField(
            "A binary frame does not start with the brushlink header.", field="frame"
        )
    slot = SLOT_NAMES.get(slot_code)
    if slot is None:
        raise InvalidField(f"A binary frame names unknown slot {slot_code}.", field="frame")
    name = ENCODING_NAMES.get(encoding)
    if name is None:
        raise InvalidField(f"A binary frame names unknown encoding {encoding}.", field="frame")
    payload = bytes(data[HEADER_SIZE:])
    return BinaryFrame(str(uuid.UUID(bytes=raw_id)), slot, index, payload, name)


def to_png(image: Image) -> bytes:
    """``image`` as a PNG file (raw pixels encoded in pure Python: hosts have no Pillow)."""
    if not isinstance(image, Pixels):
        return image
    if image.layout == "gray8":
        return png.encode_gray(image.width, image.height, image.data)
    rgba = image.rgba()
    return png.encode_rgba(rgba.width, rgba.height, rgba.data)


def image_size(image: Image) -> int:
    """Bytes a frame of this image carries (for the client's size check)."""
    return len(image.payload()) if isinstance(image, Pixels) else len(image)
