"""Protocol v1 message types: one dataclass per message, one codec, no I/O.

Every JSON text frame is an object with ``"type"``; job messages also carry ``"job_id"``.
Images never travel inside JSON: they follow as binary frames (see ``frames.py``) and JSON
messages refer to them by slot and index. Unknown fields are ignored on both sides so that
minor versions can add fields. docs/protocol.md documents every class registered here, and a
test keeps the two in step.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from .errors import BrushlinkError, InvalidField, InvalidJSON, UnknownMessage

PROTOCOL_VERSION = "1.0"
PATH = "/v1"
DEFAULT_PORT = 7437

KINDS = ("generate", "inpaint", "style", "rank")
TILE_MODES = ("none", "x", "y", "xy")


def new_job_id() -> str:
    return str(uuid.uuid4())


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
        return {"type": self.type, **asdict(self)}

    def encode(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for f in fields(cls):
            # list and object fields are iterated later: a null or a string there must fail
            # here, as a bad field, not deep inside the server as an internal error
            container = f.default_factory
            misshapen = container in (list, dict) and f.name in kwargs
            if misshapen and not isinstance(kwargs[f.name], container):  # type: ignore[arg-type]
                shape = "an array" if container is list else "an object"
                raise InvalidField(f"`{f.name}` must be {shape}.", field=f.name)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            missing = [f.name for f in fields(cls) if f.name not in data and _required(f)]
            raise InvalidField(
                f"`{cls.type}` needs the field(s): {', '.join(missing) or '?'}.",
                field=missing[0] if missing else None,
            ) from exc


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def decode_message(text: str | bytes) -> Message:
    """Parse one JSON text frame into its message class (shape only; values are checked later)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"The message is not valid JSON ({exc.__class__.__name__}).") from exc
    if not isinstance(data, dict):
        raise InvalidJSON("A message must be a JSON object with a `type` field.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise InvalidField("A message needs a string `type` field.", field="type")
    cls = MESSAGES.get(kind)
    if cls is None:
        raise UnknownMessage(f"Unknown message type `{kind[:40]}`.", field="type")
    return cls.from_wire(data)


# --------------------------------------------------------------------------- requests


@dataclass
class ImageRef:
    """Names one binary frame that belongs to a request: slot ("image", "mask", ...) and index."""

    slot: str
    index: int = 0


@dataclass
class JobSpec:
    """What to make. Every field has a default so bridges only set what the artist chose.

    Engines read what applies to them; a ``None`` means "the model's default".
    """

    kind: str = "generate"
    prompt: str = ""
    negative_prompt: str = ""
    model: str | None = None  # model name from `welcome.models`; None: the server's default
    width: int | None = None  # output size; None: the input image's size or the model's default
    height: int | None = None
    seed: int | None = None  # None: the server picks one and reports it in the result
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None  # img2img / style strength in [0, 1]
    candidates: int = 1  # drawn, then ranked by CLIP
    keep: int | None = None  # how many of the ranked candidates to return (None: all)
    tile: str = "none"  # seamless tiling: none | x | y | xy
    style: str | None = None  # a named style for the style kind (e.g. "sketch")
    scheduler: str | None = None
    priority: int = 0  # higher runs first; ties run in arrival order
    options: dict[str, Any] = field(default_factory=dict)  # engine-specific extras


@dataclass
class Submit(Message):
    """client->server: a job. Followed by one binary frame per entry of ``images``."""

    type: ClassVar[str] = "submit"
    direction: ClassVar[str] = "client->server"
    job_id: str
    job: dict[str, Any]
    images: list[dict[str, Any]] = field(default_factory=list)

    def spec(self) -> JobSpec:
        return spec_from_wire(self.job)

    def image_refs(self) -> list[ImageRef]:
        refs = []
        for item in self.images:
            if not isinstance(item, dict) or not isinstance(item.get("slot"), str):
                raise InvalidField("Each entry of `images` needs a `slot`.", field="images")
            index = item.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 256:
                raise InvalidField("An image `index` must be 0..255.", field="images")
            refs.append(ImageRef(item["slot"], index))
        return refs


def spec_from_wire(data: Any) -> JobSpec:
    """Build a JobSpec from JSON, checking every field's type (ranges are the server's job)."""
    if not isinstance(data, dict):
        raise InvalidField("`job` must be an object.", field="job")
    spec = JobSpec()
    for f in fields(JobSpec):
        if f.name not in data or data[f.name] is None:
            continue
        value = data[f.name]
        expected = _FIELD_TYPES[f.name]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise InvalidField(
                f"`{f.name}` must be {_TYPE_WORDS[expected]}, not {type(value).__name__}.",
                field=f.name,
            )
        setattr(spec, f.name, value)
    return spec


_FIELD_TYPES: dict[str, type] = {
    "kind": str,
    "prompt": str,
    "negative_prompt": str,
    "model": str,
    "width": int,
    "height": int,
    "seed": int,
    "steps": int,
    "guidance": float,
    "strength": float,
    "candidates": int,
    "keep": int,
    "tile": str,
    "style": str,
    "scheduler": str,
    "priority": int,
    "options": dict,
}
_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", dict: "an object"}


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
class Welcome(Message):
    type: ClassVar[str] = "welcome"
    direction: ClassVar[str] = "server->client"
    version: str
    capabilities: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    server: str = "brushlink"


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
    image: bytes | None = field(default=None, repr=False)

    def to_wire(self) -> dict[str, Any]:
        wire = super().to_wire()
        wire.pop("image")
        return wire


@dataclass
class ResultImage:
    index: int
    width: int
    height: int
    seed: int | None = None
    score: float | None = None  # CLIP score when ranked
    png: bytes | None = field(default=None, repr=False)


@dataclass
class Result(JobEvent):
    """Final: follows one binary frame (slot "result", index i) per entry of ``images``."""

    type: ClassVar[str] = "result"
    direction: ClassVar[str] = "server->client"
    images: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def result_images(self) -> list[ResultImage]:
        known = {f.name for f in fields(ResultImage)}
        return [ResultImage(**{k: v for k, v in d.items() if k in known}) for d in self.images]


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
