"""Hot folder recipes with LoRAs, ControlNets (their pictures from sidecars or the input itself)
and the upscale kind, end to end: `brushlink watch --once` against a real server with a ComfyUI
models folder of tiny models in the published layouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures.guided_models import comfy_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return comfy_models(tmp_path_factory.mktemp("comfy") / "models")


def blocks(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = (rng.random((size // 8, size // 8)) > 0.5).astype(np.uint8) * 255
    return cv2.cvtColor(np.kron(grid, np.ones((8, 8), np.uint8)), cv2.COLOR_GRAY2BGR)


def once(inbox: Path, server) -> subprocess.CompletedProcess[str]:
    cmd = [*BRUSHLINK, "watch", str(inbox), "--once", "--settle", "0.2"]
    cmd += ["--server", server.url, "--token", server.token]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def recipe(inbox: Path, name: str, text: str) -> Path:
    folder = inbox / name
    folder.mkdir(parents=True)
    (folder / "recipe.toml").write_text(text)
    return folder


def test_recipes_take_loras_controls_and_upscale(server_factory, models: Path, tmp_path) -> None:
    server = server_factory("--models", str(models))
    inbox = tmp_path / "inbox"
    base = 'kind = "generate"\nmodel = "tiny"\nsize = "64x64"\nsteps = 2\nseed = 4\n'
    recipe(inbox, "plain", base)
    recipe(inbox, "styled", base + '[[loras]]\nname = "style"\nweight = 1.0\n')
    guided = recipe(
        inbox, "sketched", base + '[[controls]]\nmodel = "edges"\npreprocessor = "none"\n'
    )
    sketch_style = recipe(
        inbox,
        "follow",
        'kind = "style"\nmodel = "tiny"\nprompt = "a cat"\nsteps = 2\nstrength = 0.9\n'
        '[[controls]]\nmodel = "edges"\n',
    )
    upscale = recipe(inbox, "bigger", 'kind = "upscale"\n[upscale]\nscale = 2\n')
    for name in ("plain", "styled", "sketched"):
        (inbox / name / "cat.txt").write_text("a cat\n")
    cv2.imwrite(str(guided / "cat.control.png"), blocks(1))  # the first control's picture
    cv2.imwrite(str(sketch_style / "sketch.png"), blocks(2))  # no sidecar: the input itself
    cv2.imwrite(str(upscale / "small.png"), blocks(3, 48))
    done = once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    outbox = tmp_path / "outbox"
    plain = cv2.imread(str(outbox / "plain" / "cat-1.png"))
    styled = cv2.imread(str(outbox / "styled" / "cat-1.png"))
    sketched = cv2.imread(str(outbox / "sketched" / "cat-1.png"))
    assert np.abs(styled.astype(int) - plain).mean() > 1  # the LoRA changed it
    assert np.abs(sketched.astype(int) - plain).mean() > 1  # the control changed it
    # the control sidecar travelled with its input to done/
    assert (guided / "done" / "cat.control.png").is_file()
    assert cv2.imread(str(outbox / "follow" / "sketch.png")).shape == (64, 64, 3)
    assert cv2.imread(str(outbox / "bigger" / "small.png")).shape == (96, 96, 3)
    sidecar = json.loads((outbox / "styled" / "cat.json").read_text())
    assert sidecar["model"] == "tiny"


def test_a_generate_recipe_with_a_control_and_no_picture_says_which_file_it_needs(
    server_factory, models: Path, tmp_path
) -> None:
    server = server_factory("--models", str(models))
    inbox = tmp_path / "inbox"
    folder = recipe(
        inbox, "sketched", 'kind = "generate"\nmodel = "tiny"\n[[controls]]\nmodel = "edges"\n'
    )
    (folder / "cat.txt").write_text("a cat\n")
    done = once(inbox, server)
    assert done.returncode == 1
    note = (folder / "failed" / "cat.error.txt").read_text()
    assert "cat.control.png" in note
