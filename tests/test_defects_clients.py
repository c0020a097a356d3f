"""Defects on the client side, each against a real server process: a token that starts with
`-` on the command line, the command line when its server dies mid-job, and a client without
reconnect whose server is gone."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.wire import wait_for_log
from PIL import Image

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import ServerUnavailable
from brushlink.plugin.request import Job, Request
from brushlink.server.config import new_token
from brushlink.server.images import encode_rgba

BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "BRUSHLINK_HOME": str(home), "PYTHONUNBUFFERED": "1"}


# --------------------------------------------------------------------------- tokens with a dash


def test_new_tokens_never_start_with_a_dash() -> None:
    # one token in 64 would, were it not for the fix: 5000 draws miss it with odds of 1e-34
    tokens = [new_token() for _ in range(5000)]
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == len(tokens) and min(len(t) for t in tokens) >= 43


def test_a_token_starting_with_a_dash_works_on_the_command_line(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, server_factory, coffee: np.ndarray
) -> None:
    home = tmp_path_factory.mktemp("dash-home")
    token = "-" + secrets.token_urlsafe(32)[1:]
    (home / "token").write_text(token + "\n")
    srv = server_factory(home=home)
    assert srv.token == token  # the server kept the token it found
    elsewhere = tmp_path / "no-home"  # nothing to fall back on: the flag must carry the token
    elsewhere.mkdir()

    out = tmp_path / "bricks.png"
    generate = subprocess.run(
        [*BRUSHLINK, "generate", "red brick wall", "--size", "64x64", "--steps", "2"]
        + ["--server", srv.url, "--token", token, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(elsewhere),
    )
    assert generate.returncode == 0, generate.stderr
    with Image.open(out) as image:
        assert image.size == (64, 64)

    for n, command in enumerate(
        [[*BRUSHLINK, "watch"], [sys.executable, "-m", "brushlink.bridges.hotfolder"]]
    ):
        inbox = tmp_path / f"inbox{n}"
        (inbox / "sketch").mkdir(parents=True)
        (inbox / "sketch" / "recipe.toml").write_text('kind = "style"\nstyle = "sketch"\n')
        Image.fromarray(coffee[::4, ::4, :3]).save(inbox / "sketch" / "cup.png")
        watch = subprocess.run(
            [*command, str(inbox), "--once", "--settle", "0.3", "--server-wait", "30"]
            + ["--server", srv.url, "--token", token],
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(elsewhere),
        )
        assert watch.returncode == 0, watch.stdout + watch.stderr
        assert (tmp_path / "outbox" / "sketch" / ("cup.png" if n == 0 else "cup~2.png")).is_file()


# --------------------------------------------------------------------------- the CLI loses its server


def test_the_command_line_reports_a_server_lost_mid_job_and_does_not_run_it_again(
    tmp_path: Path, server_factory
) -> None:
    """The CLI finds the server by itself (BRUSHLINK_HOME, no --server). A job of 16 candidates
    of 100 steps at 512 x 512 runs for minutes; the server is killed once it has accepted the
    job. The CLI must say the server was lost and exit non-zero, never fall back in-process."""
    srv = server_factory()
    (srv.home / "config.toml").write_text(f"[server]\nport = {srv.port}\n")
    out = tmp_path / "wall.png"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        cli = subprocess.Popen(
            [*BRUSHLINK, "generate", "mossy stone wall", "--model", "builtin"]
            + ["--size", "512x512", "--steps", "100", "--candidates", "16", "-o", str(out)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_env(srv.home),
        )
    try:
        wait_for_log(srv, "accepted: generate with builtin", timeout=120)
        time.sleep(1)  # well into its first steps
        srv.kill()
        deadline = time.monotonic() + 60
        while cli.poll() is None and time.monotonic() < deadline:
            assert "in-process" not in stderr_path.read_text(), "it ran the job a second time"
            time.sleep(0.2)
        assert cli.poll() is not None, "the command line did not notice its server died"
    finally:
        if cli.poll() is None:
            cli.send_signal(signal.SIGKILL)
            cli.wait()
    message = stderr_path.read_text()
    assert cli.returncode != 0
    assert "in-process" not in message
    assert "lost" in message and "server_unavailable" in message, message
    assert not out.exists()


# --------------------------------------------------------------------------- reconnect=False


def test_a_client_without_reconnect_fails_fast_once_its_server_is_gone(server_factory) -> None:
    srv = server_factory()
    client = BlockingClient(srv.url, srv.token, reconnect=False)
    try:
        client.connect()
        srv.kill()
        job = Job(
            Request(kind="style", style="sketch"), image=encode_rgba(np.zeros((8, 8, 4), np.uint8))
        )
        started = time.monotonic()
        with pytest.raises(ServerUnavailable) as info:
            client.run(job, timeout=60)  # a hang would end here, after 60 s
        assert time.monotonic() - started < 10
        assert "did not answer in time" not in info.value.message
    finally:
        client.close()
