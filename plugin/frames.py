"""Binary frames: a fixed 22-byte header naming the job and slot, then the PNG bytes.

    offset  size  field
    0       2     magic b"BL"
    2       1     frame format version (1)
    3       1     slot code (SLOTS below)
    4       1     index within the slot (0..255; e.g. the n-th result)
    5       1     reserved, 0
    6       16    job id: the 16 bytes of the job's UUID
    22      ...   payload: a PNG file

Images are never base64'd into JSON: a 2048x2048 canvas costs its PNG size and nothing more.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from .errors import InvalidField

MAGIC = b"BL"
FRAME_VERSION = 1
_HEADER = struct.Struct(">2sBBBx16s")
HEADER_SIZE = _HEADER.size

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


@dataclass(frozen=True)
class BinaryFrame:
    job_id: str
    slot: str
    index: int
    payload: bytes

    def encode(self) -> bytes:
        return encode_frame(self.job_id, self.slot, self.index, self.payload)


def job_id_bytes(job_id: str) -> bytes:
    try:
        return uuid.UUID(job_id).bytes
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidField("`job_id` must be a UUID.", field="job_id") from exc


def encode_frame(job_id: str, slot: str, index: int, payload: bytes) -> bytes:
    if slot not in SLOTS:
        raise InvalidField(f"Unknown image slot `{slot}`.", field="slot")
    if not 0 <= index < 256:
        raise InvalidField("A frame index must be 0..255.", field="index")
    return _HEADER.pack(MAGIC, FRAME_VERSION, SLOTS[slot], index, job_id_bytes(job_id)) + payload


def decode_frame(data: bytes) -> BinaryFrame:
    if len(data) < HEADER_SIZE:
        raise InvalidField("A binary frame is shorter than its 22-byte header.", field="frame")
    magic, version, slot_code, index, raw_id = _HEADER.unpack_from(data)
    if magic != MAGIC or version != FRAME_VERSION:
        raise InvalidField(
            "A binary frame does not start with the brushlink header.", field="frame"
        )
    slot = SLOT_NAMES.get(slot_code)
    if slot is None:
        raise InvalidField(f"A binary frame names unknown slot {slot_code}.", field="frame")
    return BinaryFrame(str(uuid.UUID(bytes=raw_id)), slot, index, bytes(data[HEADER_SIZE:]))
