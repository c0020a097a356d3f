"""Defects of the server's protocol handling, each driven over a real socket to a real server:
deep JSON, job ids spelled another way, one job submitted from two connections while its images
decode, and a cancel sent before a job's images."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from fixtures.wire import (
    configure,
    final_text,
    next_message,
    open_ws,
    ping,
    send_frames,
    send_submit,
)

from brushlink.server.images import encode_rgba

SKETCH = {"kind": "style", "style": "sketch"}


def _small_png(side: int = 32) -> bytes:
    return encode_rgba(np.full((side, side, 4), 200, np.uint8))


def _slow_to_decode_png(side: int = 4096) -> bytes:
    """A 16-bit RGBA ramp at the pixel limit: about a second to decode, 25 MB on the wire."""
    ramp = np.linspace(0, 65535, side, dtype=np.uint16)
    image = np.empty((side, side, 4), np.uint16)
    image[...] = ramp[None, :, None]
    return cv2.imencode(".png", image)[1].tobytes()


# --------------------------------------------------------------------------- deep JSON


def test_json_nested_100000_deep_is_invalid_json_and_the_connection_goes_on(server) -> None:
    with open_ws(server) as ws:
        ws.send("[" * 100_000 + "]" * 100_000)
        answer = next_message(ws)
        assert (answer["type"], answer["code"]) == ("error", "invalid_json")
        assert "nested" in answer["message"]
        assert ping(ws) == []  # the same connection still answers


# --------------------------------------------------------------------------- job id spellings

SPELLINGS: dict[str, Callable[[str], str]] = {
    "upper case": str.upper,
    "braces": lambda u: "{" + u + "}",
    "no dashes": lambda u: u.replace("-", ""),
    "urn": lambda u: "urn:uuid:" + u,
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_job_id_spelled_another_way_is_refused_and_its_frame_dropped(server, spelling) -> None:
    canonical = str(uuid.uuid4())
    job_id = SPELLINGS[spelling](canonical)
    assert str(uuid.UUID(job_id)) == canonical  # the same UUID, spelled another way
    with open_ws(server) as ws:
        send_submit(ws, job_id, SKETCH, [("image", 0, _small_png())])
        answer = next_message(ws)
        assert answer == {
            **answer,
            "type": "failed",
            "job_id": job_id,
            "code": "invalid_field",
            "field": "job_id",
        }
        assert canonical in answer["message"]  # says how to write it
        # Its binary frame (which names the job by its 16 bytes) was dropped without a word,
        # and nothing else about the job follows.
        assert ping(ws) == []


def test_refused_job_ids_do_not_use_up_the_queue_limit(server_factory) -> None:
    srv = configure(server_factory(), "[limits]\nmax_queued_per_client = 2\n")
    with open_ws(srv) as ws:
        for spell in SPELLINGS.values():  # four refused jobs, twice the limit
            send_submit(ws, spell(str(uuid.uuid4())), SKETCH, [("image", 0, _small_png())])
            assert next_message(ws)["code"] == "invalid_field"
        good = str(uuid.uuid4())
        send_submit(ws, good, SKETCH, [("image", 0, _small_png())])
        answer = json.loads(final_text(ws, good))
        assert answer["type"] == "result", answer


# --------------------------------------------------------------------------- one job, two sockets


def test_one_job_id_from_two_connections_while_decoding_runs_once(server) -> None:
    """The second submit arrives while the first one's image is still read or decoded: it
    attaches to the job. Both connections get the very same result, down to its timings."""
    image = _slow_to_decode_png()
    job_id = str(uuid.uuid4())
    job = {**SKETCH, "seed": 7}
    with open_ws(server, max_size=2**26) as first, open_ws(server, max_size=2**26) as second:
        send_submit(first, job_id, job, [("image", 0, image)])
        send_submit(second, job_id, job, [("image", 0, image)])
        answers = [final_text(first, job_id), final_text(second, job_id)]
        assert ping(first) == [] and ping(second) == []  # nothing more for either
    result = json.loads(answers[0])
    assert result["type"] == "result", result
    assert result["images"][0]["width"] == 4096
    assert result["metadata"]["timings"]["decode_s"] > 0
    assert answers[1] == answers[0]  # one run: a second one would have its own timings


def test_a_second_connection_s_frames_complete_a_job_whose_first_sender_left(server) -> None:
    """The first connection sends the header and leaves; the second, submitting the same
    request, sends the image. The job runs from it. A third connection that only collected the
    job gets the same answer."""
    job_id = str(uuid.uuid4())
    images = [("image", 0, _small_png(48))]
    with open_ws(server) as second, open_ws(server) as third:
        with open_ws(server) as first:
            send_submit(first, job_id, SKETCH, images, frames=False)
            assert ping(first) == []
            send_submit(second, job_id, SKETCH, images, frames=False)
            third.send(json.dumps({"type": "collect", "job_ids": [job_id]}))
            assert ping(second) == [] and ping(third) == []  # attached, nothing decoded yet
        send_frames(second, job_id, images)
        answers = [final_text(second, job_id), final_text(third, job_id)]
    assert json.loads(answers[0])["type"] == "result" and answers[1] == answers[0]


def test_a_job_whose_images_can_no_longer_arrive_is_unknown_to_those_attached(server) -> None:
    """Only its submitter sends its images; when that connection closes half-way, a connection
    that collected the job hears `unknown_job` (a client then submits it again)."""
    job_id = str(uuid.uuid4())
    with open_ws(server) as watcher:
        with open_ws(server) as sender:
            send_submit(sender, job_id, SKETCH, [("image", 0, _small_png())], frames=False)
            assert ping(sender) == []
            watcher.send(json.dumps({"type": "collect", "job_ids": [job_id]}))
            assert ping(watcher) == []
        answer = json.loads(final_text(watcher, job_id, timeout=30))
    assert (answer["type"], answer["code"]) == ("failed", "unknown_job")


# --------------------------------------------------------------------------- early cancel


def test_a_cancel_before_the_images_arrive_cancels_the_job_for_good(server) -> None:
    job_id = str(uuid.uuid4())
    images = [("image", 0, _small_png(64))]
    with open_ws(server) as ws:
        send_submit(ws, job_id, SKETCH, images, frames=False)
        ws.send(json.dumps({"type": "cancel", "job_id": job_id}))
        assert next_message(ws) == {"type": "cancelled", "job_id": job_id}
        send_frames(ws, job_id, images)  # arrive late, and are dropped
        time.sleep(3)  # a sketch of 64 x 64 px takes milliseconds: a run would be done by now
        assert ping(ws) == []  # no accepted, no result, no error
        # and the connection goes on serving
        other = str(uuid.uuid4())
        send_submit(ws, other, SKETCH, images)
        assert json.loads(final_text(ws, other))["type"] == "result"
