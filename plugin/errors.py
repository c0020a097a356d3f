"""Every error that crosses the wire, as a class with a stable code.

The server raises one of these, sends ``to_wire()``; the client rebuilds the same class with
``from_wire()`` and raises it, so a bridge catches ``PromptTooLong`` whether the check happened
locally or on the server.

    BrushlinkError                  code              meaning
    ├── RequestError                bad_request       the request itself is wrong (never retried)
    │   ├── InvalidJSON             invalid_json      a text frame that is not a JSON object
    │   ├── UnknownMessage          unknown_message   a "type" this protocol version does not know
    │   ├── InvalidField            invalid_field     a field is missing, of the wrong type or range
    │   ├── UnknownKind             unknown_kind      kind is not generate/inpaint/style/rank
    │   ├── PromptTooLong           prompt_too_long   prompt longer than max_prompt_chars
    │   ├── InvalidImage            invalid_image     not a PNG, truncated, or undecodable
    │   ├── ImageTooLarge           too_many_pixels   width*height over max_pixels (checked before decoding)
    │   ├── ImageMismatch           image_mismatch    e.g. a mask whose size differs from the image
    │   ├── MessageTooBig           message_too_big   a frame larger than max_message_bytes
    │   ├── UnknownModel            unknown_model     no model of that name
    │   ├── Unsupported             unsupported       the model cannot do this kind / needs missing weights
    │   └── DuplicateJob            duplicate_job     a job id reused for a different request
    ├── QueueFull                   queue_full        too many jobs queued for this connection
    ├── UnknownJob                  unknown_job       cancel/collect of a job the server does not hold
    ├── Unauthorized                unauthorized      missing or wrong token (handshake refused: HTTP 401)
    ├── OriginRefused               origin_refused    browser Origin or Host not allowed (HTTP 403)
    ├── EngineError                 engine_error      the engine failed while running the job
    │   └── OutOfMemory             out_of_memory     not enough device memory, even after a retry
    ├── ServerUnavailable           server_unavailable  cannot reach the server (client side only)
    ├── JobWasCancelled             cancelled         raised by a client waiting on a job that was cancelled
    └── InternalError               internal_error    a bug; details stay in the server log

Wire form: ``{"code": "...", "message": "...", "field": "..."?}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BrushlinkError(Exception):
    """Base class: a stable ``code`` and a sentence a person understands."""

    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            wire["field"] = self.field
        return wire

    @staticmethod
    def from_wire(data: dict[str, Any]) -> BrushlinkError:
        """Rebuild the error a peer sent; unknown codes keep their code and message."""
        code = str(data.get("code", "error"))
        cls = ERROR_CLASSES.get(code)
        message = str(data.get("message", ""))
        field = data.get("field")
        if cls is None:
            err = BrushlinkError(message, field=field)
            err.code = code  # type: ignore[misc]  # keep a newer server's code visible
            return err
        return cls(message or None, field=field)


class RequestError(BrushlinkError):
    code = "bad_request"
    default_message = "The request is not valid."


class InvalidJSON(RequestError):
    code = "invalid_json"
    default_message = "The message is not a JSON object."


class UnknownMessage(RequestError):
    code = "unknown_message"
    default_message = "The message type is not known to this server."


class InvalidField(RequestError):
    code = "invalid_field"
    default_message = "A field of the request is missing or has a wrong value."


class UnknownKind(RequestError):
    code = "unknown_kind"
    default_message = "The job kind must be one of generate, inpaint, style or rank."


class PromptTooLong(RequestError):
    code = "prompt_too_long"
    default_message = "The prompt is too long."


class InvalidImage(RequestError):
    code = "invalid_image"
    default_message = "An image could not be read: it is not a complete PNG file."


class ImageTooLarge(RequestError):
    code = "too_many_pixels"
    default_message = "An image has more pixels than the server accepts."


class ImageMismatch(RequestError):
    code = "image_mismatch"
    default_message = "The images of the request do not fit together."


class MessageTooBig(RequestError):
    code = "message_too_big"
    default_message = "A message is larger than the server accepts."


class UnknownModel(RequestError):
    code = "unknown_model"
    default_message = "There is no model of that name."


class Unsupported(RequestError):
    code = "unsupported"
    default_message = "The model cannot do this kind of job."


class DuplicateJob(RequestError):
    code = "duplicate_job"
    default_message = "That job id is already used by a different request."


class QueueFull(BrushlinkError):
    code = "queue_full"
    default_message = "Too many jobs are waiting for this connection; wait for some to finish."


class UnknownJob(BrushlinkError):
    code = "unknown_job"
    default_message = "The server holds no job with that id (it may have expired)."


class Unauthorized(BrushlinkError):
    code = "unauthorized"
    default_message = "The server refused the token. Check the token in the bridge's settings."


class OriginRefused(BrushlinkError):
    code = "origin_refused"
    default_message = "The server refuses connections from this web origin or host."


class EngineError(BrushlinkError):
    code = "engine_error"
    default_message = "The engine failed while running the job."


class OutOfMemory(EngineError):
    code = "out_of_memory"
    default_message = "Not enough memory on the device for this job, even with lower settings."


class ServerUnavailable(BrushlinkError):
    code = "server_unavailable"
    default_message = "The brushlink server cannot be reached. Is `brushlink serve` running?"


class JobWasCancelled(BrushlinkError):
    code = "cancelled"
    default_message = "The job was cancelled."


class InternalError(BrushlinkError):
    code = "internal_error"
    default_message = "The server hit an internal error; the details are in its log."


def _all_subclasses(cls: type[BrushlinkError]) -> list[type[BrushlinkError]]:
    found: list[type[BrushlinkError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_EVERY: list[type[BrushlinkError]] = [BrushlinkError, *_all_subclasses(BrushlinkError)]
ERROR_CLASSES: dict[str, type[BrushlinkError]] = {cls.code: cls for cls in _EVERY}
