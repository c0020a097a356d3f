"""Every kind of bad input gets a clear, coded answer, and the server keeps serving others."""

from __future__ import annotations

import json
import struct
import uuid
import zlib

import numpy as np
import pytest
from fixtures.wire import open_ws
from websockets.exceptions import ConnectionClosed

from brushlink.plugin import png
from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import MessageTooBig
from brushlink.plugin.frames import encode_frame
from brushlink.plugin.request import Job, Request
from brushlink.server.images import decode_rgba, encode_rgba


def _answer(ws, timeout: float = 30) -> dict:
    """The next JSON message, skipping binary frames and progress chatter."""
    while True:
        frame = ws.recv(timeout=timeout)
        if isinstance(frame, str):
            message = json.loads(frame)
            if message["type"] not in ("progress", "preview"):
                return message


def _submit(ws, job: dict, images: list[tuple[str, int, bytes]] = ()) -> str:
    job_id = str(uuid.uuid4())
    ws.send(
        json.dumps(
            {
                "type": "submit",
                "job_id": job_id,
                "job": job,
                "images": [{"slot": s, "index": i} for s, i, _ in images],
            }
        )
    )
    for slot, index, data in images:
        ws.send(encode_frame(job_id, slot, index, data))
    return job_id


def _small_png(side: int = 16) -> bytes:
    image = np.full((side, side, 4), 200, np.uint8)
    return encode_rgba(image)


def _pixel_bomb(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge image: must be refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        png.SIGNATURE
        + png.chunk(b"IHDR", ihdr)
        + png.chunk(b"IDAT", idat)
        + png.chunk(b"IEND", b"")
    )


def _still_serving(server) -> None:
    """Another client's job still runs to the end."""
    with BlockingClient(server.url, server.token, timeout=120) as client:
        result = client.run(Job(Request(kind="style", style="sketch"), image=_small_png(32)))
    out = decode_rgba(result.images[0].data, "result")
    assert out.shape == (32, 32, 4)


BAD_JOBS = [
    ({"kind": "paint"}, [], "unknown_kind"),
    ({"kind": "style", "style": "sketch", "steps": "many"}, [("image", 0)], "invalid_field"),
    ({"kind": "style", "style": "sketch", "strength": 3.5}, [("image", 0)], "invalid_field"),
    ({"kind": "style", "style": "sketch", "prompt": "x" * 5000}, [("image", 0)], "prompt_too_long"),
    ({"kind": "style", "style": "sketch", "candidates": 0}, [("image", 0)], "invalid_field"),
    ({"kind": "style", "style": "sketch", "tile": "diagonal"}, [("image", 0)], "invalid_field"),
    ({"kind": "inpaint", "model": "fill"}, [("image", 0)], "invalid_field"),  # no mask
    ({"kind": "style", "model": "no-such-model"}, [("image", 0)], "unknown_model"),
    ({"kind": "generate", "model": "fill", "prompt": "x"}, [], "unsupported"),
    ({"kind": "style", "style": "no-such-style"}, [("image", 0)], "invalid_field"),
    ({"kind": "style"}, [("image", 0)], "invalid_field"),  # neither style nor reference
    (
        {
            "kind": "generate",
            "model": "builtin",
            "prompt": "red",
            "options": {"pattern_guidance": "lots"},
        },
        [],
        "invalid_field",
    ),
]


@pytest.mark.parametrize(("job", "slots", "code"), BAD_JOBS)
def test_bad_requests_fail_with_a_stable_code_and_a_sentence(server, job, slots, code) -> None:
    with open_ws(server) as ws:
        job_id = _submit(ws, job, [(s, i, _small_png()) for s, i in slots])
        answer = _answer(ws)
        assert answer == {**answer, "type": "failed", "job_id": job_id, "code": code}
        assert len(answer["message"]) > 15 and answer["message"].endswith(".")  # a sentence
        # The same connection keeps working after a refused request.
        ws.send(json.dumps({"type": "ping", "token": "still-there"}))
        assert _answer(ws) == {"type": "pong", "token": "still-there"}


def test_malformed_json_and_unknown_types_get_error_messages(server) -> None:
    with open_ws(server) as ws:
        ws.send("{this is not json")
        assert _answer(ws)["code"] == "invalid_json"
        ws.send(json.dumps({"type": "launch_missiles"}))
        assert _answer(ws)["code"] == "unknown_message"
        ws.send(json.dumps({"type": "submit", "job_id": "not-a-uuid", "job": {}}))
        assert _answer(ws)["code"] == "invalid_field"
        ws.send(b"short")
        assert _answer(ws)["code"] == "invalid_field"
    _still_serving(server)


def test_truncated_png_is_refused_clearly(server) -> None:
    data = _small_png(64)
    with open_ws(server) as ws:
        job_id = _submit(ws, {"kind": "style", "style": "sketch"}, [("image", 0, data[:-30])])
        answer = _answer(ws)
        assert (answer["job_id"], answer["code"], answer["field"]) == (
            job_id,
            "invalid_image",
            "image",
        )
        job_id = _submit(ws, {"kind": "style", "style": "sketch"}, [("image", 0, b"GIF89a" * 10)])
        assert _answer(ws)["code"] == "invalid_image"
    _still_serving(server)


def test_mask_of_the_wrong_size_is_refused(server) -> None:
    with open_ws(server) as ws:
        _submit(
            ws,
            {"kind": "inpaint", "model": "fill"},
            [("image", 0, _small_png(64)), ("mask", 0, _small_png(32))],
        )
        answer = _answer(ws)
        assert answer["code"] == "image_mismatch" and "64x64" in answer["message"]


def test_pixel_bomb_is_refused_from_its_header(server) -> None:
    with open_ws(server) as ws:
        _submit(
            ws, {"kind": "style", "style": "sketch"}, [("image", 0, _pixel_bomb(100000, 100000))]
        )
        answer = _answer(ws)
        assert answer["code"] == "too_many_pixels" and "100000x100000" in answer["message"]
    _still_serving(server)


def test_frames_for_undeclared_slots_are_refused(server) -> None:
    with open_ws(server) as ws:
        job_id = str(uuid.uuid4())
        ws.send(
            json.dumps(
                {
                    "type": "submit",
                    "job_id": job_id,
                    "job": {"kind": "style", "style": "sketch"},
                    "images": [{"slot": "image"}],
                }
            )
        )
        ws.send(encode_frame(job_id, "mask", 0, _small_png()))
        answer = _answer(ws)
        assert answer["job_id"] == job_id and answer["code"] == "invalid_field"


def test_oversized_message_closes_only_that_connection(server_factory) -> None:
    srv = server_factory()
    (srv.home / "config.toml").write_text("[limits]\nmax_message_bytes = 100000\n")
    srv.stop()
    srv.start()
    with open_ws(srv, max_size=2**24) as ws:
        _submit(ws, {"kind": "style", "style": "sketch"}, [("image", 0, b"\x00" * 200_000)])
        with pytest.raises(ConnectionClosed) as info:
            _answer(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big
    _still_serving(srv)


def test_queue_limit_per_connection(server_factory) -> None:
    srv = server_factory()
    (srv.home / "config.toml").write_text("[limits]\nmax_queued_per_client = 2\n")
    srv.stop()
    srv.start()
    big = encode_rgba(np.full((1024, 1024, 4), 90, np.uint8))
    with open_ws(srv) as ws:
        ids = [
            _submit(ws, {"kind": "style", "style": "oil"}, [("image", 0, big)]) for _ in range(3)
        ]
        answers = {}
        while len(answers) < 3:
            message = _answer(ws, timeout=120)
            if message["type"] in ("result", "failed"):
                answers[message["job_id"]] = (
                    message["type"] if message["type"] == "result" else message["code"]
                )
        assert [answers[i] for i in ids] == ["result", "result", "queue_full"]


def test_the_client_refuses_an_oversized_image_before_sending_it(server_factory) -> None:
    srv = server_factory()
    (srv.home / "config.toml").write_text("[limits]\nmax_message_bytes = 100000\n")
    srv.stop()
    srv.start()
    with BlockingClient(srv.url, srv.token, timeout=60) as client:
        big = Job(Request(kind="style", style="sketch"), image=b"\x89PNG" + bytes(200_000))
        with pytest.raises(MessageTooBig) as info:
            client.run(big)
        assert info.value.field == "image" and "MiB" in info.value.message
        # The connection is still good: nothing was sent.
        result = client.run(Job(Request(kind="style", style="sketch"), image=_small_png(32)))
        assert result.images[0].width == 32
