"""`brushlink watch` end to end: real folders, real filesystem events, a real server.

The watcher runs as a subprocess exactly as a user starts it. Waits poll the file system with a
generous deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from brushlink.bridges.hotfolder.journal import Entry, Journal

BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]
WAIT_S = 90.0

WATERCOLOR = 'kind = "style"\nmodel = "filters"\nstyle = "watercolor"\n'
CLEANUP = 'kind = "inpaint"\nmodel = "fill"\n'


# --------------------------------------------------------------------------- helpers


def _recipe(inbox: Path, name: str, text: str) -> Path:
    folder = inbox / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.toml").write_text(text)
    return folder


def _save(array: np.ndarray, path: Path, **kwargs: object) -> Path:
    Image.fromarray(array[..., :3]).save(path, **kwargs)
    return path


def _png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array[..., :3]).save(out, format="PNG")
    return out.getvalue()


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def _small(image: np.ndarray, width: int) -> np.ndarray:
    height = round(image.shape[0] * width / image.shape[1])
    return np.asarray(Image.fromarray(image[..., :3]).resize((width, height), Image.LANCZOS))


def _args(inbox: Path, server: object, *extra: str) -> list[str]:
    return [
        *BRUSHLINK,
        "watch",
        str(inbox),
        "--server",
        server.url,  # type: ignore[attr-defined]
        "--token",
        server.token,  # type: ignore[attr-defined]
        "--settle",
        "0.3",
        *extra,
    ]


def _once(inbox: Path, server: object, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _args(inbox, server, "--once", *extra), capture_output=True, text=True, timeout=WAIT_S
    )


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `brushlink watch` in the background; stopped (politely, then not) at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(inbox: Path, server: object, *extra: str) -> subprocess.Popen[str]:
        log = open(tmp_path / f"watch-{len(started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            _args(inbox, server, *extra), stdout=log, stderr=subprocess.STDOUT, text=True
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _assert_exactly_once(inbox: Path, outbox: Path, recipe: str, stems: list[str]) -> None:
    """Every input in done/ once, one image + one sidecar each in the outbox, nothing else."""
    folder = inbox / recipe
    assert sorted(_names(folder / "done")) == sorted(f"{s}.png" for s in stems)
    assert [p for p in folder.iterdir() if p.is_file() and p.name != "recipe.toml"] == []
    assert _names(folder / ".brushlink") == []  # no journal entry left behind
    expected = sorted([f"{s}.png" for s in stems] + [f"{s}.json" for s in stems])
    assert _names(outbox / recipe) == expected
    for stem in stems:
        meta = json.loads((outbox / recipe / f"{stem}.json").read_text())
        assert meta["input"] == f"{stem}.png"
        _pixels(outbox / recipe / f"{stem}.png")  # decodes whole


def _huge_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- recipes on photos


def test_style_recipe_on_real_photos(
    tmp_path: Path, server: object, coffee: np.ndarray, astronaut: np.ndarray
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
    photos = {
        "coffee.png": _small(coffee, 120),
        "astronaut.jpg": _small(astronaut, 96),
    }
    _save(photos["coffee.png"], folder / "coffee.png")
    _save(photos["astronaut.jpg"], folder / "astronaut.jpg", quality=95)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # ignored, stays where it is
    # The same photo again, with a sidecar that changes the style for this file only.
    (folder / "cup.json").write_text('{"style": "sketch"}')
    _save(photos["coffee.png"], folder / "cup.png")

    done = _once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 3 done, 0 failed" in done.stdout
    assert sorted(_names(folder / "done")) == ["astronaut.jpg", "coffee.png", "cup.json", "cup.png"]
    assert (folder / ".DS_Store").exists()
    cup = json.loads((outbox / "watercolor" / "cup.json").read_text())
    assert cup["style"] == "sketch"
    sketch, watercolor = (_pixels(outbox / "watercolor" / f"{s}.png") for s in ("cup", "coffee"))
    assert np.abs(sketch - watercolor).mean() > 3  # the sidecar's style, not the recipe's
    for name, source in photos.items():
        stem = name.split(".")[0]
        out = _pixels(outbox / "watercolor" / f"{stem}.png")
        assert out.shape == source.shape  # same size
        assert np.abs(out - source.astype(np.int16)).mean() > 3  # and visibly restyled
        meta = json.loads((outbox / "watercolor" / f"{stem}.json").read_text())
        assert meta["input"] == name and meta["recipe"] == "watercolor"
        assert (
            meta["kind"] == "style" and meta["model"] == "filters" and meta["style"] == "watercolor"
        )
        assert meta["images"][0]["file"] == f"{stem}.png"
        assert (meta["images"][0]["width"], meta["images"][0]["height"]) == (
            source.shape[1],
            source.shape[0],
        )
        assert "timings" in meta and meta["finished"]


def test_inpaint_recipe_uses_the_mask_sidecar(
    tmp_path: Path, server: object, coffee: np.ndarray
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "cleanup", CLEANUP)
    image = _small(coffee, 96)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:36, 30:54] = 255
    Image.fromarray(mask).save(folder / "cup.mask.png")
    _save(image, folder / "cup.png")

    done = _once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    out = _pixels(outbox / "cleanup" / "cup.png")
    assert out.shape == image.shape
    far = np.ones_like(mask, bool)
    far[8:48, 18:66] = False  # the mask grown by more than the engine's grow + feather
    assert np.array_equal(out[far], image[far])  # untouched outside the mask
    assert np.abs(out[20:36, 30:54] - image[20:36, 30:54]).mean() > 1  # filled inside
    assert _names(folder / "done") == ["cup.mask.png", "cup.png"]


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_fail_with_a_note_in_plain_words(
    tmp_path: Path, server: object, coffee: np.ndarray
) -> None:
    inbox = tmp_path / "inbox"
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
    (folder / "cut.png").write_bytes(_png_bytes(_small(coffee, 120))[:2000])
    (folder / "notes.png").write_text("this is a shopping list, not a picture")
    (folder / "notes.jpg").write_text("and this is another one")  # same stem, same moment
    (folder / "failed").mkdir()
    (folder / "failed" / "cut.png").write_bytes(b"an earlier failure, kept")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n")
    (folder / "huge.png").write_bytes(_huge_png(40000, 40000))
    broken = _recipe(inbox, "typo", 'kind = "style"\nstrenght = 0.5\n')
    _save(_small(coffee, 32), broken / "a.png")
    # The server refuses: fill cannot generate (stays true when generating models are installed).
    prompts = _recipe(inbox, "textures", 'kind = "generate"\nmodel = "fill"\nsize = "64x64"\n')
    (prompts / "bricks.txt").write_text("red bricks\nmossy stone\n")

    done = _once(inbox, server)
    assert done.returncode == 1, done.stdout + done.stderr  # something failed
    assert "0 done, 7 failed" in done.stdout

    def note(recipe: Path, stem: str) -> str:
        return (recipe / "failed" / f"{stem}.error.txt").read_text()

    # Names already taken in failed/ get a suffix; nothing is overwritten.
    assert (folder / "failed" / "cut.png").read_bytes() == b"an earlier failure, kept"
    assert "truncated or damaged" in note(folder, "cut~2")
    notes = sorted([note(folder, "notes"), note(folder, "notes~2")])
    assert "notes.jpg" in notes[0] and "notes.png" in notes[1]
    assert all("not an image" in text for text in notes)
    inputs = sorted(p.name for p in (folder / "failed").glob("notes*") if "error" not in p.name)
    assert len(inputs) == 2 and {n.split(".")[0] for n in inputs} == {"notes", "notes~2"}
    assert "not an image" in note(folder, "report")
    assert "too large" in note(folder, "huge") and "too_many_pixels" in note(folder, "huge")
    assert "unknown field `strenght`" in note(broken, "a")
    assert "unsupported" in note(prompts, "bricks") and "fill" in note(prompts, "bricks")
    for recipe, name in [
        (folder, "cut~2.png"),
        (folder, "huge.png"),
        (broken, "a.png"),
        (prompts, "bricks.txt"),
    ]:
        assert (recipe / "failed" / name).is_file()  # moved, never deleted
    assert (
        not (tmp_path / "outbox" / "watercolor").exists()
        or _names(tmp_path / "outbox" / "watercolor") == []
    )


# --------------------------------------------------------------------------- settling


def test_a_slow_chunked_copy_is_never_picked_up_half_written(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    reference = _recipe(inbox, "whole", WATERCOLOR)
    slow = _recipe(inbox, "slow", WATERCOLOR)
    png = _png_bytes(_small(coffee, 160))
    (reference / "cup.png").write_bytes(png)
    assert _once(inbox, server).returncode == 0

    # Pieces come every 0.15 s; a stall of the writer up to 2.5 s (5 x settle) is tolerated.
    watcher(inbox, server, "--rescan", "600", "--settle", "0.5")
    with open(slow / "cup.png", "wb") as fh:
        for start in range(0, len(png), len(png) // 8 + 1):
            fh.write(png[start : start + len(png) // 8 + 1])
            fh.flush()
            time.sleep(0.15)  # a slow network copy: the file grows in pieces
    _wait_until(lambda: (slow / "done" / "cup.png").exists(), "the slow copy to be processed")
    assert (slow / "done" / "cup.png").read_bytes() == png
    assert np.array_equal(
        _pixels(outbox / "slow" / "cup.png"), _pixels(outbox / "whole" / "cup.png")
    )
    assert not (slow / "failed").exists()


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
    _wait_until(
        lambda: (tmp_path / "watch-0.log").read_text().count("watching") == 1, "the watcher"
    )
    tile = _small(coffee, 48)
    stems = [f"img{i:02d}" for i in range(50)]
    for i, stem in enumerate(stems):
        if i == 10:  # the first ten arrive before their recipe does
            (folder / "recipe.toml").write_text(WATERCOLOR)
        _save(np.roll(tile, i, axis=1), folder / f"{stem}.png")
    _wait_until(lambda: len(_names(folder / "done")) == 50, "all 50 inputs in done/")
    _wait_until(lambda: _names(folder / ".brushlink") == [], "the journal to empty")
    _assert_exactly_once(inbox, outbox, "watercolor", stems)
    second = _once(inbox, server)  # one watcher per inbox
    assert second.returncode == 2 and "already watching" in second.stderr


def test_kill_9_in_the_middle_of_a_burst_then_restart(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
    tile = _small(coffee, 48)
    stems = [f"img{i:02d}" for i in range(40)]
    for i, stem in enumerate(stems):
        _save(np.roll(tile, i, axis=0), folder / f"{stem}.png")
    proc = watcher(inbox, server, "--concurrency", "3")
    _wait_until(lambda: len(_names(folder / "done")) >= 3, "the first inputs to finish")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(_names(folder / "done"))

    again = _once(inbox, server)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(stems) - finished_before} done" in again.stdout or finished_before == len(stems)
    _assert_exactly_once(inbox, outbox, "watercolor", stems)
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
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
    out = outbox / "watercolor"
    out.mkdir(parents=True)
    image = _small(coffee, 40)
    for stem in ("written", "started", "failed", "stale"):
        _save(image, folder / f"{stem}.png")
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
    _save(np.roll(image, 5, axis=1), folder / "stale.png", compress_level=0)

    # Crashed right after moving to done/, before its entry was removed: only the entry goes.
    _save(image, folder / "moved.png")
    _entry(folder, "moved.png", "written", ["moved.png", "moved.json"])
    (folder / "done").mkdir()
    (folder / "moved.png").rename(folder / "done" / "moved.png")

    done = _once(inbox, server)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "summary: 3 done, 1 failed" in done.stdout
    assert (out / "written.png").read_bytes() == b"the outputs of the first run"
    assert json.loads((out / "written.json").read_text())["first"] is True
    assert _pixels(out / "started.png").shape == image.shape
    assert _pixels(out / "stale.png").shape == image.shape
    assert sorted(_names(folder / "done")) == [
        "moved.png",
        "stale.png",
        "started.png",
        "written.png",
    ]
    assert _names(folder / "failed") == ["failed.error.txt", "failed.png"]
    assert "the server refused it" in (folder / "failed" / "failed.error.txt").read_text()
    assert not any("~" in name for name in _names(out))
    assert _names(folder / ".brushlink") == []


# --------------------------------------------------------------------------- the server goes away


def test_files_wait_for_the_server_and_complete_when_it_returns(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
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
            _save(np.roll(_small(coffee, 40), i, axis=1), folder / f"{stem}.png")
        _wait_until(
            lambda: "Retrying" in log.read_text(), "the watcher to notice the server is away"
        )
        waiting = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert waiting == sorted([*(f"{s}.png" for s in stems), "recipe.toml"])  # nothing moved
        own.start()  # type: ignore[attr-defined]
        _wait_until(lambda: len(_names(folder / "done")) == 4, "the inputs to complete")
        _wait_until(lambda: _names(folder / ".brushlink") == [], "the journal to empty")
    finally:
        own.stop()  # type: ignore[attr-defined]
    _assert_exactly_once(inbox, outbox, "watercolor", stems)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_once_gives_up_when_the_server_never_comes(tmp_path: Path, coffee: np.ndarray) -> None:
    inbox = tmp_path / "inbox"
    folder = _recipe(inbox, "watercolor", WATERCOLOR)
    nobody = SimpleNamespace(url=f"ws://127.0.0.1:{_free_port()}/v1", token="no-server-here")
    _save(_small(coffee, 40), folder / "a.png")
    result = _once(inbox, nobody, "--server-wait", "2")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Retrying" in result.stdout and "stopped: the server" in result.stdout
    assert (folder / "a.png").exists()  # not the input's fault: it stays
    assert not (folder / "failed").exists() and not (folder / "done").exists()
