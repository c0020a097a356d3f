"""Defects of the server's memory: a client that never reads its results, decoded inputs kept
after a job ended, and 16-bit PNGs decoded through a float copy."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.wire import configure, open_ws, send_submit, wait_for_log
from websockets.exceptions import ConnectionClosed

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.request import Job, Request
from brushlink.server.config import load_config
from brushlink.server.images import decode_rgba, encode_rgba
from brushlink.server.inprocess import LocalServer

MiB = 2**20


def _noise_png(side: int) -> bytes:
    """Noise does not compress: a `detail` result of it is about 3 MB at 1024 x 1024."""
    image = np.random.default_rng(side).integers(0, 256, (side, side, 4), dtype=np.uint8)
    image[..., 3] = 255
    return encode_rgba(image)


# --------------------------------------------------------------------------- a client that never reads


def test_a_client_that_never_reads_is_dropped_while_others_are_served(server_factory) -> None:
    """Limits of 2 MiB waiting and 3 s per frame. The idle client's websocket holds one frame
    and then stops reading the socket; its ten results (3 MB each) fill the socket buffers,
    then the server's queue, and the server drops it. Meanwhile a client that reads gets its
    own result, although that alone is larger than the 2 MiB."""
    srv = configure(
        server_factory(), f"[limits]\nmax_outgoing_bytes = {2 * MiB}\nwrite_timeout_s = 3\n"
    )
    image = _noise_png(1024)
    job = {"kind": "style", "style": "detail"}
    with open_ws(srv, max_queue=1, max_size=64 * MiB) as idle:
        ids = [str(uuid.uuid4()) for _ in range(10)]
        for job_id in ids:
            send_submit(idle, job_id, job, [("image", 0, image)])

        with BlockingClient(srv.url, srv.token, timeout=180) as reader:
            result = reader.run(Job(Request(kind="style", style="detail"), image=image))
        assert result.images[0].width == 1024
        assert len(result.images[0].data or b"") > 2 * MiB

        line = wait_for_log(srv, "dropping connection", timeout=120)
        assert "does not read" in line or "waited too long" in line
        # Reading now, the idle client finds its connection cut before all its results.
        results = 0
        with pytest.raises(ConnectionClosed):
            while True:
                frame = idle.recv(timeout=60)
                if isinstance(frame, str) and json.loads(frame)["type"] == "result":
                    results += 1
        assert results < len(ids)

    # the server goes on serving
    with BlockingClient(srv.url, srv.token, timeout=120) as reader:
        small = encode_rgba(np.full((32, 32, 4), 128, np.uint8))
        assert reader.run(Job(Request(kind="style", style="sketch"), image=small)).images


# --------------------------------------------------------------------------- finished jobs


def test_a_finished_job_keeps_its_answer_but_not_its_decoded_images(
    tmp_path: Path, coffee: np.ndarray
) -> None:
    with LocalServer(load_config(tmp_path)) as local:
        assert local.app is not None
        with BlockingClient(local.url, local.token, timeout=120) as client:
            job = Job(Request(kind="style", style="sketch"), image=encode_rgba(coffee))
            result = client.run(job)
        record = local.app.book.get(job.job_id)
        assert record is not None and record.done
        # the answer stays collectable: the result frame, then the `result` naming it
        assert record.final_frames is not None and len(record.final_frames) == 2
        assert record.final_frames[0] == _frame_of(result)
        assert json.loads(record.final_frames[-1])["type"] == "result"
        # the inputs are gone: 400 x 600 px of decoded photo (and its PNG) no longer held
        assert record.work is None
        assert record.frames == {}


def _frame_of(result) -> bytes:
    from brushlink.plugin.frames import encode_frame

    return encode_frame(result.job_id, "result", 0, result.images[0].data or b"")


# --------------------------------------------------------------------------- 16-bit PNGs


def test_a_16_bit_png_decodes_without_a_float_copy() -> None:
    """A 4096 x 4096 RGBA PNG of 16 bits a channel: OpenCV decodes it into 128 MiB, the 8-bit
    RGBA result is 64 MiB. The peak stays within 256 MiB (those two and one more 8-bit copy);
    a float64 copy alone would be 512 MiB (the old code peaked at 704 MiB)."""
    side = 4096
    ramp = np.linspace(0, 65535, side, dtype=np.uint16)
    image = np.empty((side, side, 4), np.uint16)
    image[...] = ramp[None, :, None]
    data = cv2.imencode(".png", image)[1].tobytes()
    del image
    tracemalloc.start()  # numpy reports its buffers (OpenCV's arrays are numpy's) to tracemalloc
    try:
        rgba = decode_rgba(data, "image")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rgba.shape == (side, side, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0].tolist() == [0, 0, 0, 0] and rgba[0, -1].tolist() == [255] * 4  # high byte
    sixteen_bit = side * side * 4 * 2
    assert peak >= sixteen_bit  # tracemalloc saw the decode itself
    assert peak <= 2 * sixteen_bit, f"peak {peak / MiB:.0f} MiB"
