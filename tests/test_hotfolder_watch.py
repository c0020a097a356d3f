"""`brushlink watch` end to end: real folders, real filesystem events, a real server.

The watcher runs as a subprocess exactly as a user starts it. Waits poll the file system with a
generous deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fixtures.hotfolder import (
    CLEANUP,
    WATERCOLOR,
    huge_png,
    names_in,
    once,
    pixels,
    png_bytes,
    recipe_folder,
    save_photo,
    shrink,
    wait_until,
)
from PIL import Image

# --------------------------------------------------------------------------- recipes on photos


def test_style_recipe_on_real_photos(
    tmp_path: Path, server: object, coffee: np.ndarray, astronaut: np.ndarray
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    photos = {
        "coffee.png": shrink(coffee, 120),
        "astronaut.jpg": shrink(astronaut, 96),
    }
    save_photo(photos["coffee.png"], folder / "coffee.png")
    save_photo(photos["astronaut.jpg"], folder / "astronaut.jpg", quality=95)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # ignored, stays where it is
    # The same photo again, with a sidecar that changes the style for this file only.
    (folder / "cup.json").write_text('{"style": "sketch"}')
    save_photo(photos["coffee.png"], folder / "cup.png")

    done = once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 3 done, 0 failed" in done.stdout
    assert sorted(names_in(folder / "done")) == [
        "astronaut.jpg",
        "coffee.png",
        "cup.json",
        "cup.png",
    ]
    assert (folder / ".DS_Store").exists()
    cup = json.loads((outbox / "watercolor" / "cup.json").read_text())
    assert cup["style"] == "sketch"
    sketch, watercolor = (pixels(outbox / "watercolor" / f"{s}.png") for s in ("cup", "coffee"))
    assert np.abs(sketch - watercolor).mean() > 3  # the sidecar's style, not the recipe's
    for name, source in photos.items():
        stem = name.split(".")[0]
        out = pixels(outbox / "watercolor" / f"{stem}.png")
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
    folder = recipe_folder(inbox, "cleanup", CLEANUP)
    image = shrink(coffee, 96)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:36, 30:54] = 255
    Image.fromarray(mask).save(folder / "cup.mask.png")
    save_photo(image, folder / "cup.png")

    done = once(inbox, server)
    assert done.returncode == 0, done.stdout + done.stderr
    out = pixels(outbox / "cleanup" / "cup.png")
    assert out.shape == image.shape
    far = np.ones_like(mask, bool)
    far[8:48, 18:66] = False  # the mask grown by more than the engine's grow + feather
    assert np.array_equal(out[far], image[far])  # untouched outside the mask
    assert np.abs(out[20:36, 30:54] - image[20:36, 30:54]).mean() > 1  # filled inside
    assert names_in(folder / "done") == ["cup.mask.png", "cup.png"]


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_fail_with_a_note_in_plain_words(
    tmp_path: Path, server: object, coffee: np.ndarray
) -> None:
    inbox = tmp_path / "inbox"
    folder = recipe_folder(inbox, "watercolor", WATERCOLOR)
    (folder / "cut.png").write_bytes(png_bytes(shrink(coffee, 120))[:2000])
    (folder / "notes.png").write_text("this is a shopping list, not a picture")
    (folder / "notes.jpg").write_text("and this is another one")  # same stem, same moment
    (folder / "failed").mkdir()
    (folder / "failed" / "cut.png").write_bytes(b"an earlier failure, kept")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n")
    (folder / "huge.png").write_bytes(huge_png(40000, 40000))
    broken = recipe_folder(inbox, "typo", 'kind = "style"\nstrenght = 0.5\n')
    save_photo(shrink(coffee, 32), broken / "a.png")
    # The server refuses: fill cannot generate (stays true when generating models are installed).
    prompts = recipe_folder(
        inbox, "textures", 'kind = "generate"\nmodel = "fill"\nsize = "64x64"\n'
    )
    (prompts / "bricks.txt").write_text("red bricks\nmossy stone\n")

    done = once(inbox, server)
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
        or names_in(tmp_path / "outbox" / "watercolor") == []
    )


# --------------------------------------------------------------------------- settling


def test_a_slow_chunked_copy_is_never_picked_up_half_written(
    tmp_path: Path,
    server: object,
    coffee: np.ndarray,
    watcher: Callable[..., subprocess.Popen[str]],
) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    reference = recipe_folder(inbox, "whole", WATERCOLOR)
    slow = recipe_folder(inbox, "slow", WATERCOLOR)
    png = png_bytes(shrink(coffee, 160))
    (reference / "cup.png").write_bytes(png)
    assert once(inbox, server).returncode == 0

    # Pieces come every 0.15 s; a stall of the writer up to 2.5 s (5 x settle) is tolerated.
    watcher(inbox, server, "--rescan", "600", "--settle", "0.5")
    with open(slow / "cup.png", "wb") as fh:
        for start in range(0, len(png), len(png) // 8 + 1):
            fh.write(png[start : start + len(png) // 8 + 1])
            fh.flush()
            time.sleep(0.15)  # a slow network copy: the file grows in pieces
    wait_until(lambda: (slow / "done" / "cup.png").exists(), "the slow copy to be processed")
    assert (slow / "done" / "cup.png").read_bytes() == png
    assert np.array_equal(pixels(outbox / "slow" / "cup.png"), pixels(outbox / "whole" / "cup.png"))
    assert not (slow / "failed").exists()
