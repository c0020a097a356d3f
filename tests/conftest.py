"""Shared fixtures: a real `brushlink serve` in a subprocess, and real photos.

`server` is one server for the whole session (tests that only need to talk to one);
`server_factory` starts private ones (tests that stop, restart or configure theirs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# shared fixtures of the Blender tests (extension_zip, blender, sd_server, blender_sd) and the
# hot folder tests (watcher)
pytest_plugins = ["fixtures.blender", "fixtures.hotfolder"]
BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]


@dataclass
class ServerProcess:
    home: Path
    args: list[str] = field(default_factory=list)
    port: int = 0
    url: str = ""
    sdapi_url: str = ""  # with --sdapi: the A1111 API's base URL (http://HOST:PORT/sdapi/v1)
    process: subprocess.Popen | None = None

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start (or restart on the same port) and wait for the listening line."""
        env = {**os.environ, "BRUSHLINK_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*BRUSHLINK, "serve", "--port", str(self.port), "--home", str(self.home), *self.args],
            stdout=subprocess.PIPE,
            stderr=open(self.home / "stderr.log", "ab"),  # noqa: SIM115 - lives as long as the server
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("brushlink A1111 API on "):
                self.sdapi_url = line.split()[-1]
            if line.startswith("brushlink listening on "):
                self.url = line.split()[-1]
                self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
                return self
            if not line and self.process.poll() is not None:
                break
        log = (self.home / "stderr.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"server did not start:\n{log}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started: list[ServerProcess] = []

    def start(*args: str, home: Path | None = None) -> ServerProcess:
        home = home or tmp_path_factory.mktemp("home")
        server = ServerProcess(home=home, args=list(args)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(home=tmp_path_factory.mktemp("session-home")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """The machine's cores are shared with the server under test: one torch thread in the test
    process is faster than two fighting for them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- images


def rgba(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    from skimage import data

    return rgba(data.coffee())


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return rgba(data.astronaut())


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return rgba(data.chelsea())
