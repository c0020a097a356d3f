"""The protocol core without any socket: messages, frames, errors, the job state machine."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brushlink.plugin import errors
from brushlink.plugin.errors import BrushlinkError, InvalidField, InvalidJSON, UnknownMessage
from brushlink.plugin.frames import BinaryFrame, decode_frame, encode_frame
from brushlink.plugin.jobs import JobState, JobTracker
from brushlink.plugin.protocol import (
    MESSAGES,
    Accepted,
    Cancelled,
    Failed,
    Preview,
    Progress,
    Queued,
    Result,
    ResultImage,
    Started,
    Submit,
    decode_message,
)
from brushlink.plugin.request import InpaintParams, Job, Request


def _sample(cls: type) -> dict:
    values = {"job_id": str(uuid.uuid4()), "version": "1.1", "job": Request(), "code": "x"}
    values["message"] = "m"
    return {f.name: values[f.name] for f in fields(cls) if f.name in values}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_message_round_trips(name: str) -> None:
    cls = MESSAGES[name]
    message = cls(**_sample(cls))
    decoded = decode_message(message.encode())
    assert type(decoded) is cls
    assert decoded.to_wire() == message.to_wire()


def test_unknown_fields_are_ignored_and_missing_ones_named() -> None:
    job_id = str(uuid.uuid4())
    decoded = decode_message(
        json.dumps({"type": "progress", "job_id": job_id, "step": 2, "new": 1})
    )
    assert decoded == Progress(job_id, step=2)
    with pytest.raises(InvalidField, match="job_id"):
        decode_message('{"type": "cancel"}')


def test_malformed_messages_raise_protocol_errors() -> None:
    with pytest.raises(InvalidJSON):
        decode_message("{not json")
    with pytest.raises(InvalidJSON):
        decode_message("[1, 2]")
    with pytest.raises(UnknownMessage):
        decode_message('{"type": "format_disk"}')


@pytest.mark.parametrize(
    "body",
    [
        {"type": "submit", "job_id": "j", "job": {}, "images": None},
        {"type": "submit", "job_id": "j", "job": {}, "images": "image"},
        {"type": "collect", "job_ids": None},
        {"type": "collect", "job_ids": {"a": 1}},
    ],
)
def test_list_fields_that_are_not_lists_are_refused_by_name(body: dict) -> None:
    # found by the fuzzer: a null `images` used to fail later as an internal error
    field = "images" if body["type"] == "submit" else "job_ids"
    with pytest.raises(InvalidField, match="must be an array") as info:
        decode_message(json.dumps(body))
    assert info.value.field == field


def test_request_types_are_checked_field_by_field() -> None:
    request = Request.from_wire({"kind": "generate", "prompt": "red", "strength": 1, "seed": 5})
    assert request.strength == 1.0 and isinstance(request.strength, float) and request.seed == 5
    with pytest.raises(InvalidField) as info:
        Request.from_wire({"steps": "twenty"})
    assert info.value.field == "steps" and "integer" in info.value.message
    with pytest.raises(InvalidField):
        Request.from_wire({"candidates": True})  # a bool is not a count


def test_nested_parts_are_typed_and_their_errors_name_the_path() -> None:
    request = Request.from_wire({"kind": "inpaint", "inpaint": {"grow": 3, "context": 1}})
    assert request.inpaint == InpaintParams(grow=3, context=1.0)
    with pytest.raises(InvalidField) as info:
        Request.from_wire({"inpaint": {"feather": "soft"}})
    assert info.value.field == "inpaint.feather" and "integer" in info.value.message
    with pytest.raises(InvalidField) as info:
        Request.from_wire({"inpaint": {"output": "sideways"}})
    assert info.value.field == "inpaint.output" and "composite" in info.value.message
    with pytest.raises(InvalidField) as info:
        Request.from_wire({"inpaint": None})
    assert info.value.field == "inpaint"


def test_the_codec_round_trips_every_field_and_a_strict_read_refuses_typos() -> None:
    request = Request(
        kind="style",
        prompt="p",
        width=64,
        strength=0.5,
        inpaint=InpaintParams(grow=2, output="layer"),
        options={"a": [1, {"b": None}]},
    )
    assert Request.from_wire(json.loads(json.dumps(request.to_wire()))) == request
    assert Request.from_wire({"strenght": 0.5}) == Request()  # a newer peer's field: ignored
    with pytest.raises(InvalidField, match="strenght") as info:
        Request.from_wire({"strenght": 0.5}, strict=True)
    assert info.value.field == "strenght"


def test_null_means_not_given_for_values_and_is_refused_for_parts() -> None:
    assert Request.from_wire({"candidates": None, "model": None}) == Request()
    with pytest.raises(InvalidField, match="options"):
        Request.from_wire({"options": None})


def test_deeply_nested_json_is_invalid_json_not_an_internal_error() -> None:
    deep = '{"type": "submit", "job_id": "x", "job": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidJSON):
        decode_message(deep)


def test_every_error_class_round_trips_by_code() -> None:
    for code, cls in errors.ERROR_CLASSES.items():
        err = cls("a sentence", field="f")
        back = BrushlinkError.from_wire(err.to_wire())
        assert type(back) is cls and back.code == code and back.message == "a sentence"


def test_error_codes_are_unique_and_documented_in_the_module() -> None:
    codes = [cls.code for cls in errors.ERROR_CLASSES.values()]
    assert len(codes) == len(set(codes))
    for code in codes:
        if code != "error":
            assert f" {code} " in errors.__doc__


def test_frames_round_trip_and_reject_garbage() -> None:
    job_id = str(uuid.uuid4())
    data = encode_frame(job_id, "mask", 3, b"\x89PNG...")
    assert decode_frame(data) == BinaryFrame(job_id, "mask", 3, b"\x89PNG...")
    with pytest.raises(InvalidField):
        decode_frame(b"XX" + data[2:])
    with pytest.raises(InvalidField):
        decode_frame(data[:10])
    with pytest.raises(InvalidField):
        encode_frame("not-a-uuid", "image", 0, b"")


def test_a_job_declares_exactly_the_frames_it_sends() -> None:
    job = Job(Request(kind="rank", prompt="x"), inputs=[b"a", b"b"], image=b"i")
    submit = Submit(job_id=job.job_id, job=job.request, images=job.image_refs())
    decoded = decode_message(submit.encode())
    assert isinstance(decoded, Submit) and decoded.job == job.request
    refs = [(r.slot, r.index) for r in decoded.images]
    sent = [(f.slot, f.index) for f in map(decode_frame, job.frames())]
    assert refs == sent == [("image", 0), ("input", 0), ("input", 1)]


def test_tracker_follows_a_job_and_attaches_frames() -> None:
    tracker = JobTracker()
    job_id = str(uuid.uuid4())
    tracker.submitted(job_id)
    for event in (Accepted(job_id), Queued(job_id, position=2), Started(job_id)):
        assert tracker.receive(event) is event
    assert tracker.jobs[job_id].state is JobState.STARTED
    tracker.receive_binary(decode_frame(encode_frame(job_id, "preview", 0, b"p")))
    preview = tracker.receive(Preview(job_id, step=1, total=4))
    assert preview is not None and preview.image == b"p"
    tracker.receive_binary(decode_frame(encode_frame(job_id, "result", 0, b"r0")))
    result = tracker.receive(Result(job_id, images=[ResultImage(index=0, width=1, height=1)]))
    assert isinstance(result, Result) and result.images[0].data == b"r0"
    assert tracker.unfinished() == []
    # Anything after the final answer (a duplicate after a reconnect) is dropped.
    assert tracker.receive(Failed(job_id, "x", "late")) is None
    assert tracker.receive(Cancelled(job_id)) is None


def test_tracker_ignores_events_of_jobs_it_does_not_own() -> None:
    tracker = JobTracker()
    assert tracker.receive(Started(str(uuid.uuid4()))) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_fuzzed_text_never_escapes_as_anything_but_a_protocol_error(data: str | bytes) -> None:
    with contextlib.suppress(BrushlinkError):
        decode_message(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(MESSAGES)),
    st.dictionaries(
        st.sampled_from(["job_id", "job", "images", "step", "code", "job_ids", "version", "x"]),
        json_values,
        max_size=5,
    ),
)
def test_fuzzed_messages_decode_or_fail_cleanly(kind: str, body: dict) -> None:
    text = json.dumps({"type": kind, **body})
    try:
        message = decode_message(text)
    except BrushlinkError:
        return
    if isinstance(message, Submit):
        assert isinstance(message.job, Request)  # typed all the way down once decoded
        assert all(isinstance(ref.slot, str) for ref in message.images)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_binary_frames_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(BrushlinkError):
        decode_frame(data)


def test_raw_pixels_travel_in_frames_and_swap_channels_exactly() -> None:
    from brushlink.plugin.frames import Pixels, to_png
    from brushlink.plugin.png import decode_rgba

    job_id = str(uuid.uuid4())
    bgra = Pixels(2, 1, bytes([10, 20, 30, 255, 1, 2, 3, 128]), "bgra8")
    frame = decode_frame(encode_frame(job_id, "image", 0, bgra))
    assert frame.encoding == "bgra8" and frame.image() == bgra
    assert bgra.rgba().data == bytes([30, 20, 10, 255, 3, 2, 1, 128])
    assert bgra.rgba().bgra() == bgra
    assert decode_rgba(to_png(bgra)) == (2, 1, bgra.rgba().data)
    with pytest.raises(errors.InvalidImage):
        Pixels(2, 2, b"\x00" * 15, "rgba8")  # a pixel short
    bad = encode_frame(job_id, "image", 0, bgra)[:-1]
    with pytest.raises(errors.InvalidImage):
        decode_frame(bad).image()


def test_a_job_sends_raw_pixels_only_where_the_link_takes_them() -> None:
    from brushlink.plugin.frames import Pixels

    pixels = Pixels(4, 4, bytes(64), "bgra8")
    job = Job(Request(kind="style", style="sketch"), image=pixels)
    [local] = map(decode_frame, job.frames(raw=("bgra8",)))
    [remote] = map(decode_frame, job.frames(raw=()))
    [too_big] = map(decode_frame, job.frames(raw=("bgra8",), limit=64))
    assert local.encoding == "bgra8" and remote.encoding == too_big.encoding == "png"
