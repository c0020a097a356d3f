"""Protocol v1 message types: one dataclass per message, one codec, no I/O.

Every JSON text frame is an object with ``"type"``; job messages also carry ``"job_id"``.
Images never travel inside JSON: they follow as binary frames (see ``frames.py``) and JSON
messages refer to them by slot and index. Fields are read and checked by ``codec.py`` from the
annotations below; unknown fields are ignored on both sides so that minor versions can add
fields. docs/protocol.md documents every class registered here, and a test keeps the two in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import codec
from .capabilities import AddonCard, ModelCard
from .errors import BrushlinkError, InvalidField, InvalidJSON, UnknownMessage
from .frames import Image
from .request import ImageRef, Request

PROTOCOL_VERSION = "1.3"
PATH = "/v1"
DEFAULT_PORT = 7437
# The handshake header in which a client lists the image encodings it reads, fastest first.
ENCODINGS_HEADER = "Brushlink-Encodings"


# --------------------------------------------------------------------------- base


MESSAGES: dict[str, type[Message]] = {}


@dataclass
class Message:
    """Base of every JSON message; subclasses set ``type`` and register themselves."""

    type: ClassVar[str] = ""
    direction: ClassVar[str] = ""  # "client->server" or "server->client"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type:
            MESSAGES[cls.type] = cls

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, **codec.encode(self)}

    def encode(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        return codec.decode(cls, {k: v for k, v in data.items() if k != "type"})


def decode_message(text: str | bytes) -> Message:
    """Parse one JSON text frame into its message class (shape and types; ranges come later)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"The message is not valid JSON ({exc.__class__.__name__}).") from exc
    except RecursionError as exc:  # json nests by recursion: a hostile document hits the limit
        raise InvalidJSON("The message is nested too deeply to be a brushlink message.") from exc
    if not isinstance(data, dict):
        raise InvalidJSON("A message must be a JSON object with a `type` field.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise InvalidField("A message needs a string `type` field.", field="type")
    cls = MESSAGES.get(kind)
    if cls is None:
        raise UnknownMessage(f"Unknown message type `{kind[:40]}`.", field="type")
    try:
        return cls.from_wire(data)
    except BrushlinkError as err:
        # a job's message that does not decode is that job's failure, answered by its id
        job_id = data.get("job_id")
        err.job_id = job_id if isinstance(job_id, str) else None  # type: ignore[attr-defined]
        raise


# --------------------------------------------------------------------------- client -> server


@dataclass
class Submit(Message):
    """client->server: a job. Followed by one binary frame per entry of ``images``."""

    type: ClassVar[str] = "submit"
    direction: ClassVar[str] = "client->server"
    job_id: str
    job: Request
    images: list[ImageRef] = field(default_factory=list)


@dataclass
class Cancel(Message):
    """client->server: stop a queued or running job; answered by `cancelled` (or `failed`)."""

    type: ClassVar[str] = "cancel"
    direction: ClassVar[str] = "client->server"
    job_id: str


@dataclass
class Collect(Message):
    """client->server: attach to jobs (e.g. after a reconnect) and get their state again."""

    type: ClassVar[str] = "collect"
    direction: ClassVar[str] = "client->server"
    job_ids: list[str] = field(default_factory=list)


@dataclass
class Ping(Message):
    """client->server: liveness check; answered by `pong` with the same token."""

    type: ClassVar[str] = "ping"
    direction: ClassVar[str] = "client->server"
    token: str = ""


# --------------------------------------------------------------------------- server events


@dataclass
class WorkerInfo:
    """One of the server's workers (1.3): where jobs run, and which models it holds loaded."""

    name: str
    device: str = ""  # cpu, cuda, cuda:1, mps
    node: str = ""  # the machine (a Ray node: its address and id)
    models_warm: list[str] = field(default_factory=list)
    busy: bool = False


@dataclass
class Welcome(Message):
    type: ClassVar[str] = "welcome"
    direction: ClassVar[str] = "server->client"
    version: str
    capabilities: list[str] = field(default_factory=list)
    models: list[ModelCard] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    server: str = "brushlink"
    addons: list[AddonCard] = field(default_factory=list)  # LoRAs, ControlNets, VAEs, ...
    encoding: str = "png"  # how this connection's result images come (frames.ENCODINGS)
    encodings: list[str] = field(default_factory=list)  # raw layouts it takes in uploads
    workers: list[WorkerInfo] = field(default_factory=list)  # where jobs run (1.3)


@dataclass
class Pong(Message):
    type: ClassVar[str] = "pong"
    direction: ClassVar[str] = "server->client"
    token: str = ""


@dataclass
class Error(Message):
    """server->client: a message that belongs to no job (bad JSON, unknown type) was refused."""

    type: ClassVar[str] = "error"
    direction: ClassVar[str] = "server->client"
    code: str
    message: str
    field: str | None = None

    def exception(self) -> BrushlinkError:
        return BrushlinkError.from_wire(
            {"code": self.code, "message": self.message, "field": self.field}
        )


@dataclass
class JobEvent(Message):
    """Base of the events of one job."""

    job_id: str


@dataclass
class Accepted(JobEvent):
    type: ClassVar[str] = "accepted"
    direction: ClassVar[str] = "server->client"
    model: str = ""
    seed: int | None = None


@dataclass
class Queued(JobEvent):
    type: ClassVar[str] = "queued"
    direction: ClassVar[str] = "server->client"
    position: int = 0  # jobs ahead of this one


@dataclass
class Started(JobEvent):
    type: ClassVar[str] = "started"
    direction: ClassVar[str] = "server->client"


@dataclass
class Progress(JobEvent):
    type: ClassVar[str] = "progress"
    direction: ClassVar[str] = "server->client"
    step: int = 0
    total: int = 0


@dataclass
class Preview(JobEvent):
    """Follows one binary frame (slot "preview") holding a small PNG of the job so far."""

    type: ClassVar[str] = "preview"
    direction: ClassVar[str] = "server->client"
    step: int = 0
    total: int = 0
    image: Image | None = field(default=None, repr=False, metadata=codec.wire(False))


@dataclass
class ResultImage:
    index: int
    width: int
    height: int
    seed: int | None = None
    score: float | None = None  # CLIP score when ranked
    # a PNG file, or raw pixels when the link carries them (Welcome.encoding)
    data: Image | None = field(default=None, repr=False, metadata=codec.wire(False))


@dataclass
class Result(JobEvent):
    """Final: follows one binary frame (slot "result", index i) per entry of ``images``."""

    type: ClassVar[str] = "result"
    direction: ClassVar[str] = "server->client"
    images: list[ResultImage] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failed(JobEvent):
    """Final: the job failed; ``code`` is one of errors.py's codes."""

    type: ClassVar[str] = "failed"
    direction: ClassVar[str] = "server->client"
    code: str = "error"
    message: str = ""
    field: str | None = None

    @classmethod
    def from_error(cls, job_id: str, err: BrushlinkError) -> Failed:
        return cls(job_id=job_id, **err.to_wire())

    def exception(self) -> BrushlinkError:
        return BrushlinkError.from_wire(
            {"code": self.code, "message": self.message, "field": self.field}
        )


@dataclass
class Cancelled(JobEvent):
    """Final: the job was cancelled before it finished."""

    type: ClassVar[str] = "cancelled"
    direction: ClassVar[str] = "server->client"


FINAL_EVENTS = (Result, Failed, Cancelled)
