"""`brushlink mcp`, driven over stdio by the MCP SDK's own client session.

The MCP process finds no server in its home and starts a private in-process one (as the command
line does), so one session covers finding the server, the tool list, a generate whose picture
comes back and is saved, an inpaint from files, and a brushlink error as an MCP tool error.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import anyio
import cv2
import numpy as np
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.types import CallToolResult, ImageContent, TextContent  # noqa: E402

from brushlink.plugin import png as pure_png  # noqa: E402

BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]


def _png_size(data: bytes) -> tuple[int, int]:
    return pure_png.read_size(data)


async def _session_calls(home: Path, out: Path, inputs: Path) -> dict[str, object]:
    params = StdioServerParameters(
        command=BRUSHLINK[0],
        args=[*BRUSHLINK[1:], "mcp", "--out", str(out), "--home", str(home)],
        env={**os.environ, "BRUSHLINK_HOME": str(home), "PYTHONUNBUFFERED": "1"},
    )
    found: dict[str, object] = {}
    with open(home / "mcp-stderr.log", "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            found["tools"] = [t.name for t in (await session.list_tools()).tools]
            found["models"] = await session.call_tool("list_models", {})
            found["generate"] = await session.call_tool(
                "generate",
                {"prompt": "red and white stripes", "width": 64, "height": 48, "seed": 3,
                 "steps": 6},
            )  # fmt: skip
            found["inpaint"] = await session.call_tool(
                "inpaint",
                {"image": str(inputs / "photo.png"), "mask": str(inputs / "mask.png")},
            )
            found["upscale"] = await session.call_tool(
                "upscale", {"image": str(inputs / "photo.png"), "scale": 2}
            )
            found["error"] = await session.call_tool(
                "generate", {"prompt": "stripes", "model": "no-such-model"}
            )
            found["bad_input"] = await session.call_tool(
                "inpaint", {"image": "not an image", "mask": "neither"}
            )
    return found


@pytest.fixture(scope="module")
def mcp_session(tmp_path_factory: pytest.TempPathFactory, coffee: np.ndarray) -> dict:
    home = tmp_path_factory.mktemp("mcp-home")
    (home / "config.toml").write_text("[server]\nport = 9\n")  # nothing listens there
    out = tmp_path_factory.mktemp("mcp-out")
    inputs = tmp_path_factory.mktemp("mcp-in")
    photo = cv2.resize(coffee, (96, 64), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(inputs / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGBA2BGRA))
    mask = np.zeros((64, 96), np.uint8)
    mask[20:40, 30:60] = 255
    cv2.imwrite(str(inputs / "mask.png"), mask)
    found = anyio.run(_session_calls, home, out, inputs)
    found["out"] = out
    found["home"] = home
    return found


def test_tools_are_listed_with_the_models_behind_them(mcp_session: dict) -> None:
    tools = mcp_session["tools"]
    # upscale is offered because the server has an upscale model (the built-in lanczos-sharp)
    assert {"list_models", "generate", "inpaint", "style", "rank", "upscale"} <= set(tools)
    models = mcp_session["models"]
    assert isinstance(models, CallToolResult) and not models.is_error
    names = [m["name"] for m in models.structured_content["models"]]
    assert {"builtin", "fill", "filters", "lanczos-sharp"} <= set(names)


def test_upscale_enlarges_the_file_it_is_given(mcp_session: dict, coffee: np.ndarray) -> None:
    result = mcp_session["upscale"]
    assert isinstance(result, CallToolResult) and not result.is_error, result
    images = [c for c in result.content if isinstance(c, ImageContent)]
    big = cv2.imdecode(np.frombuffer(base64.b64decode(images[0].data), np.uint8), cv2.IMREAD_COLOR)
    assert big.shape == (128, 192, 3)
    photo = cv2.resize(coffee, (96, 64), interpolation=cv2.INTER_AREA)[..., 2::-1]
    back = cv2.resize(big, (96, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(np.float32) - photo.astype(np.float32)).mean() < 4.0


def test_generate_returns_the_picture_and_saves_it(mcp_session: dict) -> None:
    result = mcp_session["generate"]
    assert isinstance(result, CallToolResult) and not result.is_error, result
    images = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    png = base64.b64decode(images[0].data)
    assert _png_size(png) == (64, 48)
    saved = result.structured_content["images"][0]
    path = Path(saved["path"])
    assert path.parent == mcp_session["out"] and path.read_bytes() == png
    assert saved["seed"] == 3
    text = next(c for c in result.content if isinstance(c, TextContent)).text
    assert str(path) in text


def test_inpaint_from_files(mcp_session: dict) -> None:
    result = mcp_session["inpaint"]
    assert isinstance(result, CallToolResult) and not result.is_error, result
    image = next(c for c in result.content if isinstance(c, ImageContent))
    assert _png_size(base64.b64decode(image.data)) == (96, 64)
    assert result.structured_content["model"] == "fill"  # no prompt: the weight-free fill


def test_errors_are_tool_errors_with_the_brushlink_code(mcp_session: dict) -> None:
    result = mcp_session["error"]
    assert isinstance(result, CallToolResult) and result.is_error
    text = result.content[0].text
    assert "There is no model called `no-such-model`" in text and "[unknown_model]" in text
    assert result.structured_content["code"] == "unknown_model"
    bad = mcp_session["bad_input"]
    assert bad.is_error and bad.structured_content["code"] == "invalid_image"
    # it found no server in its home and ran one in-process, and said so on stderr
    log = (mcp_session["home"] / "mcp-stderr.log").read_text()
    assert "in this process" in log


def test_without_the_sdk_it_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "mcp.py"
    blocker.write_text("raise ImportError('blocked for the test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "BRUSHLINK_HOME": str(tmp_path)}
    done = subprocess.run(
        [*BRUSHLINK, "mcp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "pip install 'brushlink[mcp]'" in done.stderr
