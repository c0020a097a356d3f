"""A job as a bridge builds it: the spec plus its images as PNG bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

from .frames import encode_frame
from .protocol import JobSpec, Submit, new_job_id


@dataclass
class JobRequest:
    spec: JobSpec
    image: bytes | None = None  # PNG: the canvas crop or source image
    mask: bytes | None = None  # PNG: 8-bit grey or RGBA, white = regenerate
    reference: bytes | None = None  # PNG: style reference
    inputs: list[bytes] = field(default_factory=list)  # PNGs to rank
    job_id: str = field(default_factory=new_job_id)

    def slots(self) -> list[tuple[str, int, bytes]]:
        found = [
            (slot, 0, png)
            for slot, png in (
                ("image", self.image),
                ("mask", self.mask),
                ("reference", self.reference),
            )
            if png is not None
        ]
        found += [("input", i, png) for i, png in enumerate(self.inputs)]
        return found

    def submit_message(self) -> Submit:
        from dataclasses import asdict

        return Submit(
            job_id=self.job_id,
            job=asdict(self.spec),
            images=[{"slot": slot, "index": index} for slot, index, _ in self.slots()],
        )

    def frames(self) -> list[bytes]:
        """The binary frames that follow the submit message, in order."""
        return [encode_frame(self.job_id, slot, index, png) for slot, index, png in self.slots()]
