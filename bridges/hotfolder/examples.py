"""``brushlink watch --init INBOX``: one example recipe of each kind, ready to edit."""

from __future__ import annotations

from pathlib import Path

from .outputs import write_atomic
from .recipe import RECIPE_FILE

EXAMPLES: dict[str, str] = {
    "watercolor": """\
# Drop photos (PNG, JPEG, WebP, TIFF) here: a watercolour version of each appears in
# OUTBOX/watercolor/. Every field is optional except kind.
kind = "style"
model = "filters"          # the weight-free OpenCV filters
style = "watercolor"       # sketch, pencil-color, watercolor, oil, cartoon, detail
format = "png"             # png, jpg or webp
""",
    "sketch": """\
# Drop photos here: a pencil sketch of each appears in OUTBOX/sketch/ as a JPEG.
kind = "style"
model = "filters"
style = "sketch"
format = "jpg"
quality = 90
""",
    "cleanup": """\
# Drop an image together with a mask named <stem>.mask.png (white = remove and fill in).
# Copy the mask first, or both at once: an image waits a little for its mask.
kind = "inpaint"
# no prompt: remove what is under the mask (the weight-free fill without a checkpoint)
""",
    "textures": """\
# Drop .txt files: every line is a prompt, every prompt becomes seamless textures named
# <stem>-<line>.png (or <stem>-<line>-<k>.png when keep > 1). Needs a model that can generate.
kind = "generate"
prompt = ""                # unused: the prompts come from the .txt lines
negative_prompt = "text, watermark, blurry"
size = "512x512"
tile = "xy"                # seamless in both directions
candidates = 4             # drawn, ranked by CLIP against the prompt...
keep = 1                   # ...and only the best one is kept
steps = 25
# seed = 1234              # fix the seed to get the same textures again
""",
    "rank": """\
# Drop images here: each is scored against the prompt (CLIP) and the score lands in
# OUTBOX/rank/<stem>.json next to a copy of the image.
kind = "rank"
prompt = "a cat sitting on a sofa"
""",
}


def write_examples(inbox: Path) -> list[Path]:
    """Write every example recipe that is not there yet (an existing recipe is never touched)."""
    written = []
    for name, text in EXAMPLES.items():
        path = inbox / name / RECIPE_FILE
        if path.exists():
            continue
        write_atomic(path, text.encode())
        written.append(path)
    return written
