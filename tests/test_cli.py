"""The command line as a user runs it: in-process when no server runs, else through the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]


def _run(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # An empty config with an unused port: "no server running here" is then certain.
    (home / "config.toml").write_text("[server]\nport = 1\n")
    env = {**os.environ, "BRUSHLINK_HOME": str(home)}
    return subprocess.run(
        [*BRUSHLINK, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(path: Path, rgba: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return path


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def test_inpaint_in_process_removes_the_masked_object(tmp_path: Path, coffee) -> None:
    photo = coffee.copy()
    photo[60:100, 60:100, :3] = (255, 0, 255)  # a magenta "object" on the table
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[56:104, 56:104] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    out = tmp_path / "out.png"
    done = _run(
        [
            "inpaint",
            str(_write(tmp_path / "photo.png", photo)),
            "--mask",
            str(tmp_path / "mask.png"),
            "-o",
            str(out),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "in-process" in done.stderr
    assert (
        out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    )  # an ordinary file, not a temp file's 0600
    result = _read(out)
    magenta = (result[..., 0] > 200) & (result[..., 1] < 60) & (result[..., 2] > 200)
    assert magenta.sum() == 0  # the object is gone
    far = cv2.dilate(mask, np.ones((41, 41), np.uint8)) == 0
    assert np.array_equal(result[far], photo[far])


def test_style_sketch_through_a_running_server(tmp_path: Path, server, astronaut) -> None:
    out = tmp_path / "sketch.png"
    done = _run(
        [
            "style",
            str(_write(tmp_path / "a.png", astronaut)),
            "--style",
            "sketch",
            "-o",
            str(out),
            "--server",
            server.url,
            "--token",
            server.token,
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "in-process" not in done.stderr
    sketch = _read(out)
    assert sketch.shape == astronaut.shape
    assert np.array_equal(sketch[..., 0], sketch[..., 1])


def test_jpeg_input_and_reference_colour_transfer(tmp_path: Path, chelsea) -> None:
    photo = tmp_path / "cat.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(chelsea, cv2.COLOR_RGBA2BGR))
    blue = np.zeros((64, 64, 4), np.uint8)
    blue[...] = (20, 60, 220, 255)
    out = tmp_path / "blue-cat.png"
    done = _run(
        [
            "style",
            str(photo),
            "--reference",
            str(_write(tmp_path / "ref.png", blue)),
            "-o",
            str(out),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = _read(out)
    assert result[..., 2].mean() > chelsea[..., 2].mean() + 30  # bluer
    assert result[..., 0].mean() < chelsea[..., 0].mean()  # less red


def test_errors_are_one_clear_line_with_their_code(tmp_path: Path, server) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    done = _run(
        [
            "style",
            str(bad),
            "--style",
            "sketch",
            "-o",
            str(tmp_path / "x.png"),
            "--server",
            server.url,
            "--token",
            server.token,
        ],
        tmp_path,
    )
    assert done.returncode == 1
    assert "[invalid_image]" in done.stderr and "Traceback" not in done.stderr
    done = _run(
        ["style", str(bad), "--style", "sketch", "-o", "x.png", "--server", "ws://127.0.0.1:1/v1"],
        tmp_path,
    )
    assert done.returncode == 3 and "cannot be reached" in done.stderr


def test_models_lists_engines_and_what_they_do(tmp_path: Path) -> None:
    done = _run(["models"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert "inpaint" in lines["fill"] and "style" in lines["filters"]
    assert "sketch" in done.stdout
