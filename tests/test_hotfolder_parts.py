"""The hot folder's parts on real files: recipes, settling, atomic writes, the journal, images."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures.hotfolder import huge_png
from PIL import Image
from skimage import data

from brushlink.bridges.hotfolder.examples import EXAMPLES, write_examples
from brushlink.bridges.hotfolder.images import encode_output, read_image, read_prompts
from brushlink.bridges.hotfolder.journal import Entry, Journal
from brushlink.bridges.hotfolder.outputs import free_name, move_durably, write_atomic
from brushlink.bridges.hotfolder.recipe import RecipeError, is_sidecar, load_recipe
from brushlink.bridges.hotfolder.settle import Settler, State, is_ignored, looks_complete
from brushlink.plugin.errors import ImageTooLarge, InvalidField, InvalidImage


def _recipe(tmp_path: Path, text: str, name: str = "r") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "recipe.toml").write_text(text)
    return folder


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- recipes


def test_recipe_fields_and_size(tmp_path: Path) -> None:
    folder = _recipe(
        tmp_path,
        'kind = "style"\nmodel = "filters"\nstyle = "oil"\nsize = "640x480"\nstrength = 1\n'
        'format = "JPEG"\n[options]\nradius = 3\n',
    )
    recipe = load_recipe(folder)
    request = recipe.request
    assert (request.width, request.height, recipe.format) == (640, 480, "jpg")
    assert request.strength == 1.0 and isinstance(request.strength, float)
    copy = recipe.request_for()
    assert (copy.kind, copy.model, copy.style, copy.options) == (
        "style",
        "filters",
        "oil",
        {"radius": 3},
    )
    assert copy is not request


def test_a_recipe_holds_the_request_tree_with_its_nested_parts(tmp_path: Path) -> None:
    folder = _recipe(tmp_path, 'kind = "inpaint"\n[inpaint]\ngrow = 12\ncontext = 0.5\n')
    recipe = load_recipe(folder)
    assert (recipe.request.inpaint.grow, recipe.request.inpaint.context) == (12, 0.5)
    override = recipe.with_overrides({"inpaint": {"feather": 3}}, "a.json").request.inpaint
    assert (override.grow, override.feather) == (12, 3)  # tables merge key by key
    with pytest.raises(RecipeError, match="inpaint.feather"):
        recipe.with_overrides({"inpaint": {"feather": "soft"}}, "a.json")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('kind = "style"\nstrenght = 0.5\n', "unknown field `strenght`"),
        ('kind = "paint"\n', "kind must be one of"),
        ('kind = "style"\nsize = "big"\n', 'size must look like "512x512"'),
        ('kind = "style"\nsteps = "ten"\n', "`steps` must be an integer, not str"),
        ('kind = "style"\nformat = "gif"\n', "format must be one of"),
        (
            'kind = "style"\nreference = "missing.png"\n',
            "reference image `missing.png` does not exist",
        ),
        ('kind = "style\n', "not valid TOML"),
    ],
)
def test_recipe_errors_name_the_problem(tmp_path: Path, text: str, words: str) -> None:
    folder = _recipe(tmp_path, text)
    with pytest.raises(RecipeError, match=re.escape(words)):
        load_recipe(folder)


def test_sidecar_overrides_are_checked_like_the_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, 'kind = "style"\nstyle = "sketch"\n'))
    assert recipe.with_overrides({"style": "oil", "seed": 7}, "a.json").request.style == "oil"
    with pytest.raises(RecipeError, match="unknown field `colour`"):
        recipe.with_overrides({"colour": "red"}, "a.json")


def test_sidecars_and_examples(tmp_path: Path) -> None:
    assert is_sidecar(Path("a.mask.png")) and is_sidecar(Path("a.json"))
    assert not is_sidecar(Path("a.png"))
    written = write_examples(tmp_path)
    assert {p.parent.name for p in written} == set(EXAMPLES)
    kinds = {load_recipe(p.parent).kind for p in written}
    assert kinds == {"generate", "inpaint", "style", "rank"}
    (tmp_path / "sketch" / "recipe.toml").write_text('kind = "style"\n')
    assert write_examples(tmp_path) == []  # never overwrites a recipe
    assert (tmp_path / "sketch" / "recipe.toml").read_text() == 'kind = "style"\n'


# --------------------------------------------------------------------------- settling


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_growing_file_settles_only_once_still(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(settle_s=1.0, incomplete_s=5.0, clock=clock)
    png = _png(data.coffee()[:64, :64])
    path = tmp_path / "a.png"
    path.write_bytes(png[:100])
    assert settler.observe(path) is State.WAITING
    clock.now = 2.0
    # Still for 2 s but without IEND: looks unfinished, so it gets more patience.
    assert settler.observe(path) is State.WAITING
    with open(path, "ab") as fh:
        fh.write(png[100:])
    os.utime(path, ns=(10**9, 10**9))
    clock.now = 2.5
    assert settler.observe(path) is State.WAITING  # changed: the clock starts again
    clock.now = 3.0
    assert settler.observe(path) is State.WAITING
    clock.now = 3.6
    assert settler.observe(path) is State.SETTLED
    path.unlink()
    assert settler.observe(path) is State.GONE


def test_a_truncated_file_settles_after_the_longer_wait(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(settle_s=1.0, incomplete_s=5.0, clock=clock)
    path = tmp_path / "cut.png"
    path.write_bytes(_png(data.coffee()[:64, :64])[:300])
    assert not looks_complete(path)
    assert settler.observe(path) is State.WAITING
    clock.now = 4.0
    assert settler.observe(path) is State.WAITING
    clock.now = 5.5
    assert settler.observe(path) is State.SETTLED


@pytest.mark.parametrize(
    "name",
    [
        ".DS_Store",
        ".hidden.png",
        "~$report.png",
        "a.png.part",
        "b.crdownload",
        "c.tmp",
        "Thumbs.db",
    ],
)
def test_temporary_and_hidden_names_are_ignored(name: str) -> None:
    assert is_ignored(Path(name))


def test_ordinary_names_count() -> None:
    assert not is_ignored(Path("holiday photo.jpg"))


# --------------------------------------------------------------------------- durable files


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out" / "a.png"
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]


def test_free_name_and_move_never_overwrite(tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    (done / "a.png").write_bytes(b"old")
    (done / "a~2.error.txt").write_text("x")
    assert free_name(done, "a", [".png", ".error.txt"]) == "a~3"
    src = tmp_path / "a.png"
    src.write_bytes(b"new")
    move_durably(src, done / "a~3.png")
    assert (done / "a.png").read_bytes() == b"old" and (done / "a~3.png").read_bytes() == b"new"


def test_move_refuses_to_overwrite_and_finishes_an_interrupted_move(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    other, src = tmp_path / "done" / "a.png", tmp_path / "a.png"
    other.write_bytes(b"an earlier file")
    src.write_bytes(b"this file")
    with pytest.raises(FileExistsError):
        move_durably(src, other)
    assert other.read_bytes() == b"an earlier file" and src.read_bytes() == b"this file"
    # A crash between the link and the unlink leaves the same file under both names.
    os.link(src, tmp_path / "done" / "b.png")
    move_durably(src, tmp_path / "done" / "b.png")
    assert not src.exists() and (tmp_path / "done" / "b.png").read_bytes() == b"this file"


def test_journal_round_trip_and_staleness(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"12345")
    st = path.stat()
    journal = Journal(tmp_path)
    journal.save(
        Entry("a.png", st.st_size, st.st_mtime_ns, "a", state="written", outputs=["a.png"])
    )
    entry = journal.load("a.png")
    assert entry is not None and entry.state == "written" and entry.matches(path)
    assert journal.reserved_stems() == {"a"}
    path.write_bytes(b"another file")
    assert not entry.matches(path)
    journal.remove("a.png")
    assert journal.load("a.png") is None and journal.entries() == []


# --------------------------------------------------------------------------- images


def test_read_image_converts_jpeg_to_png(tmp_path: Path) -> None:
    photo = data.astronaut()[:96, :128]
    path = tmp_path / "a.jpg"
    Image.fromarray(photo).save(path, quality=95)
    png = read_image(path)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (128, 96) and im.mode == "RGB"
        assert np.abs(np.asarray(im).astype(int) - photo).mean() < 4


def test_read_image_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(InvalidImage, match="not an image"):
        read_image(text)
    cut = tmp_path / "cut.png"
    cut.write_bytes(_png(data.coffee())[:5000])
    with pytest.raises(InvalidImage, match="truncated"):
        read_image(cut)
    big = tmp_path / "big.png"
    big.write_bytes(huge_png(40000, 40000))
    with pytest.raises(ImageTooLarge, match="too large"):
        read_image(big, max_pixels=4096 * 4096)


def test_output_formats(tmp_path: Path) -> None:
    png = _png(data.coffee()[:40, :60])
    assert encode_output(png, "png") == png
    for fmt, magic in (("jpg", b"\xff\xd8"), ("webp", b"RIFF")):
        out = encode_output(png, fmt)
        assert out.startswith(magic)
        with Image.open(io.BytesIO(out)) as im:
            assert im.size == (60, 40)


def test_prompts_skip_blank_and_comment_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# textures\nred bricks\n\n  mossy stone  \n")
    assert read_prompts(path) == ["red bricks", "mossy stone"]
    path.write_text("\n# nothing\n")
    with pytest.raises(InvalidField, match="holds no prompt"):
        read_prompts(path)
