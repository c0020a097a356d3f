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
    JobSpec,
    Preview,
    Progress,
    Queued,
    Result,
    Started,
    Submit,
    decode_message,
    spec_from_wire,
)
from brushlink.plugin.request import JobRequest


def _sample(cls: type) -> dict:
    values = {"job_id": str(uuid.uuid4()), "version": "1.0", "job": {}, "code": "x", "message": "m"}
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


def test_spec_types_are_checked_field_by_field() -> None:
    spec = spec_from_wire({"kind": "generate", "prompt": "red", "strength": 1, "seed": 5})
    assert spec.strength == 1.0 and isinstance(spec.strength, float) and spec.seed == 5
    with pytest.raises(InvalidField) as info:
        spec_from_wire({"steps": "twenty"})
    assert info.value.field == "steps" and "integer" in info.value.message
    with pytest.raises(InvalidField):
        spec_from_wire({"candidates": True})  # a bool is not a count


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


def test_request_declares_exactly_the_frames_it_sends() -> None:
    request = JobRequest(JobSpec(kind="rank", prompt="x"), inputs=[b"a", b"b"], image=b"i")
    submit = request.submit_message()
    refs = [(r.slot, r.index) for r in submit.image_refs()]
    sent = [(f.slot, f.index) for f in map(decode_frame, request.frames())]
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
    result = tracker.receive(Result(job_id, images=[{"index": 0, "width": 1, "height": 1}]))
    assert isinstance(result, Result) and result.result_images()[0].png == b"r0"
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
        try:
            message.spec()
            message.image_refs()
        except BrushlinkError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_binary_frames_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(BrushlinkError):
        decode_frame(data)
