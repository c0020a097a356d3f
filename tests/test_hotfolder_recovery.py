"""`brushlink watch` never loses or repeats a file: bursts, kill -9 mid-burst, a crash at every
step of a job's journal, and a server that goes away and comes back (helpers in
``fixtures/hotfolder.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from fixtures.hotfolder import (
    WATERCOLOR,
    assert_exactly_once,
    names_in,
    once,
    pixels,
    recipe_folder,
    save_photo,
    shrink,
    wait_until,
)

from brushlink.bridges.hotfolder.journal import Entry, Journal

# --------------------------------------------------------------------------- bursts and crashes


def test_a_burst_of_50_files(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = inbox / "watercolor"
    folder.mkdir(parents=True)
    # No rescan during the test: only filesystem events can find the files.
    watcher(inbox, server, "--concurrency", "3", "--rescan", "600")
    wait_until(lambda: (tmp_path / "watch-0.log").read_text().count("watching") == 1, "the watcher")
    tile = shrink(coffee, 48)
    stems = [f"img{i:02d}" for i in range(50)]
    for i, stem in enumerate(stems):
        if i == 10:  # the first ten arrive before their recipe does
            (folder / "recipe.toml").write_text(WATERCOLOR)
        save_photo(np.roll(tile, i, axis=1), folder / f"{stem}.png")
    wait_until(lambda: len(names_in(folder / "done")) == 50, "all 50 inputs in done/")
    wait_until(lambda: names_in(folder / ".brushlink") == [], "the journal to empty")
    assert_exactly_once(inbox, outbox, "watercolor", stems)
    second = once(inbox, server)  # one watcher per inbox
    assert second.returncode == 2 and "already watching" in second.stderr


def test_kill_9_in_the_middle_of_a_burst_then_restart(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    tile = shrink(coffee, 48)
    stems = [f"img{i:02d}" for i in range(40)]
    for i, stem in enumerate(stems):
        save_photo(np.roll(tile, i, axis=0), folder / f"{stem}.png")
    proc = watcher(inbox, server, "--concurrency", "3")
    wait_until(lambda: len(names_in(folder / "done")) >= 3, "the first inputs to finish")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(names_in(folder / "done"))

    again = once(inbox, server)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(stems) - finished_before} done" in again.stdout or finished_before == len(stems)
    assert_exactly_once(inbox, outbox, "watercolor", stems)
    assert [
        p for p in (outbox / "watercolor").iterdir() if p.name.startswith(".")
    ] == []  # no temp files


def _entry(
    folder: Path, name: str, state: str, outputs: list[str], error: str | None = None
) -> None:
    st = (folder / name).stat()
    stem = name.split(".")[0]
    entry = Entry(name, st.st_size, st.st_mtime_ns, stem, state=state, outputs=outputs, error=error)
    Journal(folder).save(entry)


def test_restart_after_a_crash_at_each_step(
    tmp_path: Path, server: object, coffee: np.ndarray
) -> None:
    """The states a `kill -9` can leave behind, made on purpose: each ends exactly once."""
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    out = outbox / "watercolor"
    out.mkdir(parents=True)
    image = shrink(coffee, 40)
    for stem in ("written", "started", "failed", "stale"):
        save_photo(image, folder / f"{stem}.png")
    # Crashed after its outputs were durable: it must only move, its job must not run again.
    (out / "written.png").write_bytes(b"the outputs of the first run")
    (out / "written.json").write_text('{"input": "written.png", "first": true}')
    _entry(folder, "written.png", "written", ["written.png", "written.json"])
    # Crashed halfway through writing: it runs again under the same name, no `~2` copy.
    (out / "started.png").write_bytes(b"half")
    _entry(folder, "started.png", "started", [])
    # Crashed after deciding it failed: it gets its note and moves, without a new job.
    _entry(folder, "failed.png", "failed", [], error="Why: the server refused it")
    # An entry for a file that was since replaced by another with the same name is ignored.
    _entry(folder, "stale.png", "written", ["stale.png"])
    save_photo(np.roll(image, 5, axis=1), folder / "stale.png", compress_level=0)

    # Crashed right after moving to done/, before its entry was removed: only the entry goes.
    save_photo(image, folder / "moved.png")
    _entry(folder, "moved.png", "written", ["moved.png", "moved.json"])
    (folder / "done").mkdir()
    (folder / "moved.png").rename(folder / "done" / "moved.png")

    done = once(inbox, server)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "summary: 3 done, 1 failed" in done.stdout
    assert (out / "written.png").read_bytes() == b"the outputs of the first run"
    assert json.loads((out / "written.json").read_text())["first"] is True
    assert pixels(out / "started.png").shape == image.shape
    assert pixels(out / "stale.png").shape == image.shape
    assert sorted(names_in(folder / "done")) == [
        "moved.png",
        "stale.png",
        "started.png",
        "written.png",
    ]
    assert names_in(folder / "failed") == ["failed.error.txt", "failed.png"]
    assert "the server refused it" in (folder / "failed" / "failed.error.txt").read_text()
    assert not any("~" in name for name in names_in(out))
    assert names_in(folder / ".brushlink") == []


# --------------------------------------------------------------------------- the server goes away


def test_files_wait_for_the_server_and_complete_when_it_returns(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("token-of-a-server-that-is-not-up-yet\n")
    os.chmod(home / "token", 0o600)
    # A private server of the fixture's kind that is not started yet: the watcher comes first.
    own = type(server)(home=home, port=_free_port())
    own.url = f"ws://127.0.0.1:{own.port}/v1"  # type: ignore[attr-defined]
    log = tmp_path / "watch-0.log"
    try:
        watcher(inbox, own)
        stems = [f"img{i}" for i in range(4)]
        for i, stem in enumerate(stems):
            save_photo(np.roll(shrink(coffee, 40), i, axis=1), folder / f"{stem}.png")
        wait_until(
            lambda: "Retrying" in log.read_text(), "the watcher to notice the server is away"
        )
        waiting = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert waiting == sorted([*(f"{s}.png" for s in stems), "recipe.toml"])  # nothing moved
        own.start()  # type: ignore[attr-defined]
        wait_until(lambda: len(names_in(folder / "done")) == 4, "the inputs to complete")
        wait_until(lambda: names_in(folder / ".brushlink") == [], "the journal to empty")
    finally:
        own.stop()  # type: ignore[attr-defined]
    assert_exactly_once(inbox, outbox, "watercolor", stems)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_once_gives_up_when_the_server_never_comes(tmp_path: Path, coffee: np.ndarray) -> None:
    inbox = tmp_path / "inbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    nobody = SimpleNamespace(url=f"ws://127.0.0.1:{_free_port()}/v1", token="no-server-here")
    save_photo(shrink(coffee, 40), folder / "a.png")
    result = once(inbox, nobody, "--server-wait", "2")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Retrying" in result.stdout and "stopped: the server" in result.stdout
    assert (folder / "a.png").exists()  # not the input's fault: it stays
    assert not (folder / "failed").exists() and not (folder / "done").exists()
