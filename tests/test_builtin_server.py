"""The builtin model through a real server and the real command line, on a fresh home with no
other weights: generate uses it by default, results come back ranked and seamless, and the
`brushlink generate` command writes a texture of the colour asked for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np

from brushlink.plugin.client import Client
from brushlink.plugin.request import InpaintParams, Job, Request
from brushlink.server.images import decode_rgba, encode_rgba
from brushlink.server.training import data


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=240))


async def _job(server, request: Job):
    async with Client(server.url, server.token) as client:
        return client.welcome, await client.run(request)


def test_generate_without_a_model_uses_builtin_and_ranks_its_candidates(server) -> None:
    spec = Request(
        kind="generate", prompt="red brick wall texture", candidates=3, seed=7, tile="xy"
    )
    welcome, result = _run(_job(server, Job(spec)))
    builtin = {m.name: m for m in welcome.models}["builtin"]
    assert set(builtin.kinds) == {"generate", "inpaint", "style"}
    images = result.images
    assert len(images) == 3
    assert [im.seed for im in images] != [] and {im.seed for im in images} == {7, 8, 9}
    scores = [im.score for im in images]
    assert scores == sorted(scores, reverse=True)
    for im in images:
        assert (im.width, im.height) == (512, 512)
        rgba = decode_rgba(im.data, "result")
        assert data.dominant_colour(rgba[..., :3]) == "red"
        left_right = np.abs(rgba[:, 0, :3].astype(int) - rgba[:, -1, :3]).mean()
        interior = np.abs(np.diff(rgba[..., :3].astype(int), axis=1)).mean(axis=(0, 2)).max()
        assert left_right <= 1.25 * interior + 1.0


def test_inpaint_with_the_builtin_model_keeps_the_rest(server, coffee) -> None:
    image = np.ascontiguousarray(coffee[:256, :256])
    mask = np.zeros((256, 256), np.uint8)
    mask[64:192, 64:192] = 255
    request = Job(
        Request(
            kind="inpaint",
            prompt="green checkerboard",
            model="builtin",
            seed=1,
            inpaint=InpaintParams(grow=0, feather=0),  # exactly the mask
        ),
        image=encode_rgba(image),
        mask=encode_rgba(np.dstack([mask] * 3 + [np.full_like(mask, 255)])),
    )
    _, result = _run(_job(server, request))
    out = decode_rgba(result.images[0].data, "result")
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert data.dominant_colour(out[mask == 255][None, :, :3]) == "green"


def test_brushlink_generate_writes_the_texture_asked_for(tmp_path) -> None:
    out = tmp_path / "out.png"
    env = {**os.environ, "BRUSHLINK_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "brushlink.server.cli.main",
            "generate",
            "blue polka dots",
            "-o",
            str(out),
            "--seed",
            "3",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rgba = decode_rgba(out.read_bytes(), "output")
    assert rgba.shape == (512, 512, 4)
    assert data.dominant_colour(rgba[..., :3]) == "blue"
