"""Hot folder defects and tightenings, with a real server and real folders: an input replaced
while it is processed, links dropped into the inbox, references outside it, outputs more
readable than their input, and seeds over the whole 32-bit range."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from brushlink.bridges.hotfolder.process import Processor, Reservations
from brushlink.bridges.hotfolder.runner import Runner
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import Job

BRUSHLINK = [sys.executable, "-m", "brushlink.server.cli.main"]
SKETCH = 'kind = "style"\nmodel = "filters"\nstyle = "sketch"\n'


def _recipe(inbox: Path, name: str, text: str) -> Path:
    folder = inbox / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.toml").write_text(text)
    return folder


def _save(image: np.ndarray, path: Path, width: int) -> Path:
    height = round(image.shape[0] * width / image.shape[1])
    Image.fromarray(image[..., :3]).resize((width, height)).save(path)
    return path


def _width(path: Path) -> int:
    with Image.open(path) as image:
        return image.size[0]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _once(inbox: Path, server: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRUSHLINK, "watch", str(inbox), "--once", "--settle", "0.3", "--server-wait", "30"]
        + ["--server", server.url, "--token", server.token],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=300,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- replaced input


class ReplacingRunner(Runner):
    """The real runner, which renames a new file over the input once the input has been read
    and its job goes to the server: as an artist saving over a file the folder is working on."""

    def __init__(self, url: str, token: str, replacement: Path, target: Path) -> None:
        super().__init__(url, token, log=lambda _line: None)
        self.pending: tuple[Path, Path] | None = (replacement, target)

    def run(self, job: Job, label: str) -> Result:
        if self.pending is not None:
            os.replace(*self.pending)
            self.pending = None
        return super().run(job, label)


def test_an_input_replaced_while_it_is_processed_stays_for_its_own_turn(
    tmp_path: Path, server, coffee: np.ndarray, astronaut: np.ndarray
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "sketch", SKETCH)
    photo = _save(coffee, folder / "photo.png", 96)
    newer = _save(astronaut, tmp_path / "newer.png", 64)
    runner = ReplacingRunner(server.url, server.token, newer, photo)
    try:
        processor = Processor(outbox, runner, Reservations())
        first = processor.process(photo)
        assert first is not None and first.ok, first
        # results for the old content (the rename over it took it out of the inbox), and the
        # replacement waits in the inbox, unprocessed
        assert [p.name for p in first.outputs] == ["photo.png", "photo.json"]
        assert photo.is_file() and _width(photo) == 64
        assert _names(folder / "done") == []
        assert _names(folder / ".brushlink") == []
        second = processor.process(photo)  # its turn
        assert second is not None and second.ok, second
    finally:
        runner.stop()
    made = outbox / "sketch"
    assert _names(made) == ["photo.json", "photo.png", "photo~2.json", "photo~2.png"]
    assert _width(made / "photo.png") == 96 and _width(made / "photo~2.png") == 64
    assert _names(folder / "done") == ["photo.png"] and _width(folder / "done" / "photo.png") == 64
    assert not photo.exists()


# --------------------------------------------------------------------------- links


def test_a_link_dropped_into_the_inbox_goes_to_failed_unread(
    tmp_path: Path, server, coffee: np.ndarray
) -> None:
    secret = _save(coffee, tmp_path / "private.png", 80)
    os.chmod(secret, 0o600)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "sketch", SKETCH)
    (folder / "photo.png").symlink_to(secret)
    _save(coffee, folder / "real.png", 48)  # an ordinary input beside it goes through

    done = _once(inbox, server)
    assert done.returncode == 1, done.stdout + done.stderr  # one input failed
    assert _names(outbox / "sketch") == ["real.json", "real.png"]  # nothing made of the link
    failed = folder / "failed"
    assert (failed / "photo.png").is_symlink()  # the link itself moved, not its target
    assert os.readlink(failed / "photo.png") == str(secret)
    note = (failed / "photo.error.txt").read_text()
    assert "photo.png is a link" in note and "Error code: invalid_field" in note
    assert _mode(secret) == 0o600 and secret.stat().st_nlink == 1  # untouched


# --------------------------------------------------------------------------- references


def test_a_reference_must_lie_inside_the_inbox(
    tmp_path: Path, server, coffee: np.ndarray, chelsea: np.ndarray
) -> None:
    outside = _save(chelsea, tmp_path / "outside.png", 64)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    colour = 'kind = "style"\nmodel = "filters"\nreference = "{}"\n'
    escaping = _recipe(inbox, "escaping", colour.format("../../outside.png"))
    absolute = _recipe(inbox, "absolute", colour.format(outside))
    linked = _recipe(inbox, "linked", colour.format(".ref.png"))
    (linked / ".ref.png").symlink_to(outside)  # inside by name, outside in fact
    inside = _recipe(inbox, "inside", colour.format("../shared/.ref.png"))
    (inbox / "shared").mkdir()
    _save(chelsea, inbox / "shared" / ".ref.png", 64)
    for folder in (escaping, absolute, linked, inside):
        _save(coffee, folder / "photo.png", 64)

    done = _once(inbox, server)
    assert done.returncode == 1, done.stdout + done.stderr
    for folder in (escaping, absolute, linked):
        note = (folder / "failed" / "photo.error.txt").read_text()
        assert "is outside the inbox" in note and "Error code: recipe_error" in note, note
        assert _names(outbox / folder.name) == []
    assert _names(inside / "done") == ["photo.png"]  # a reference elsewhere in the inbox works
    assert _names(outbox / "inside") == ["photo.json", "photo.png"]


# --------------------------------------------------------------------------- permissions


def test_outputs_are_no_more_readable_than_their_input(
    tmp_path: Path, server, coffee: np.ndarray
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(inbox, "sketch", SKETCH)
    os.chmod(_save(coffee, folder / "private.png", 64), 0o600)
    os.chmod(_save(coffee, folder / "shared.png", 64), 0o644)

    done = _once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    made = outbox / "sketch"
    assert _names(made) == ["private.json", "private.png", "shared.json", "shared.png"]
    assert _mode(made / "private.png") == _mode(made / "private.json") == 0o600
    ordinary = 0o644 & ~_umask()  # a readable input gives ordinary files
    assert _mode(made / "shared.png") == _mode(made / "shared.json") == ordinary


# --------------------------------------------------------------------------- seeds


def test_a_seed_over_2_to_the_31_is_made_and_recorded(tmp_path: Path, server) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = _recipe(
        inbox,
        "textures",
        'kind = "generate"\nmodel = "builtin"\nsize = "64x64"\nsteps = 2\nseed = 3000000000\n',
    )
    (folder / "walls.txt").write_text("red brick wall\n")

    done = _once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((outbox / "textures" / "walls.json").read_text())
    assert meta["seed"] == 3_000_000_000
    assert meta["images"][0]["seed"] == 3_000_000_000
    assert meta["images"][0]["metadata"]["seed"] == 3_000_000_000
    with Image.open(outbox / "textures" / "walls-1.png") as image:
        assert image.size == (64, 64)
