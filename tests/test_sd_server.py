"""A Stable Diffusion checkpoint and a CLIP in BRUSHLINK_HOME/models, served by a real
`brushlink serve` over a real socket: generate ranked candidates, rank, inpaint, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.tiny_sd import build_tiny_pipeline, save_single_file, save_tiny_clip

from brushlink.plugin.client import Client
from brushlink.plugin.errors import JobWasCancelled, Unsupported
from brushlink.plugin.protocol import Preview, Progress
from brushlink.plugin.request import Job, Request
from brushlink.server.images import decode_rgba, encode_rgba


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=300))


def _png(image: np.ndarray) -> bytes:
    return encode_rgba(np.ascontiguousarray(image))


@pytest.fixture(scope="module")
def sd_server(tmp_path_factory: pytest.TempPathFactory):
    from conftest import ServerProcess

    home = tmp_path_factory.mktemp("sd-home")
    save_single_file(
        build_tiny_pipeline(seed=4), home / "models" / "checkpoints" / "tiny.safetensors"
    )
    (home / "models" / "checkpoints" / "old.ckpt").write_bytes(b"pickle")
    save_tiny_clip(home / "models" / "clip", "tiny-clip")
    server = ServerProcess(home=home, args=["--device", "cpu"]).start(timeout=180)
    yield server
    server.stop()


def test_welcome_lists_the_checkpoint_and_the_clip(sd_server) -> None:
    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            return {m.name: m for m in client.welcome.models}

    models = _run(main())
    assert models["tiny"].engine == "diffusers"
    assert models["tiny"].family == "sd1"
    assert set(models["tiny"].kinds) == {"generate", "inpaint", "style"}
    assert models["tiny-clip"].kinds == ["rank"]
    assert "old" not in models  # a pickle is never offered


def test_generate_returns_the_best_candidates_with_scores(sd_server) -> None:
    events: list = []

    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            spec = Request(prompt="a red apple", model="tiny", width=64, height=64, steps=6,
                           seed=9, candidates=3, keep=2)  # fmt: skip
            return await client.run(Job(spec), on_event=events.append)

    result = _run(main())
    images = result.images
    assert len(images) == 2
    assert images[0].score >= images[1].score
    assert {images[0].seed, images[1].seed} <= {9, 10, 11}
    first = decode_rgba(images[0].data, "result")
    assert first.shape == (64, 64, 4)
    steps = [e.step for e in events if isinstance(e, Progress)]
    # every step reported once, in order (PNDM, SD 1.x's scheduler, takes one warm-up step more)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) in (6, 7)
    assert any(isinstance(e, Preview) for e in events)


def test_rank_job_orders_images_best_first(sd_server) -> None:
    from conftest import rgba
    from skimage import data

    photos = [rgba(data.astronaut()), rgba(data.coffee()), rgba(data.chelsea())]

    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            request = Job(Request(kind="rank", prompt="a cat", model="tiny-clip"),
                                 inputs=[_png(p) for p in photos])  # fmt: skip
            return await client.run(request)

    ranking = _run(main()).metadata["ranking"]
    assert sorted(r["index"] for r in ranking) == [0, 1, 2]
    scores = [r["score"] for r in ranking]
    assert scores == sorted(scores, reverse=True)


def test_inpaint_through_the_server_keeps_pixels_outside_the_mask(sd_server, coffee) -> None:
    image = cv2.resize(coffee, (160, 120), interpolation=cv2.INTER_AREA)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:70, 60:100] = 255

    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            request = Job(Request(kind="inpaint", model="tiny", prompt="a cup", steps=3),
                                 image=_png(image),
                                 mask=_png(cv2.cvtColor(mask, cv2.COLOR_GRAY2RGBA)))  # fmt: skip
            return await client.run(request)

    out = decode_rgba(_run(main()).images[0].data, "result")
    far = cv2.dilate(mask, np.ones((25, 25), np.uint8)) == 0
    assert np.array_equal(out[far], image[far])
    assert np.abs(out[mask > 0].astype(int) - image[mask > 0].astype(int)).mean() > 5


def test_cancel_stops_a_long_generation(sd_server) -> None:
    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            request = Job(Request(prompt="x", model="tiny", width=64, height=64, steps=150))
            handle = await client.submit(request)
            async for event in handle.events():
                if isinstance(event, Progress) and event.step >= 2:
                    await client.cancel(request.job_id)
                    break
            await handle.result()

    with pytest.raises(JobWasCancelled):
        _run(main())


def test_style_reference_without_ip_adapter_is_refused_before_queueing(sd_server, coffee) -> None:
    async def main():
        async with Client(sd_server.url, sd_server.token) as client:
            request = Job(Request(kind="style", model="tiny", prompt="x"),
                                 image=_png(coffee[:64, :64]), reference=_png(coffee[:64, :64]))  # fmt: skip
            return await client.run(request)

    with pytest.raises(Unsupported, match="ip-adapter"):
        _run(main())


def test_home_models_folder_is_where_the_files_live(sd_server) -> None:
    assert (Path(sd_server.home) / "models" / "checkpoints" / "tiny.safetensors").is_file()
