"""A recipe: ``INBOX/<name>/recipe.toml`` says what to do with every file dropped next to it.

A recipe is the request tree (``brushlink.plugin.request.Request``: kind, prompt, strength,
``[inpaint]`` and ``[options]`` tables, ...) plus what only the hot folder has: ``reference``
(an image beside the recipe), ``size``, ``format``, ``quality`` and ``description``. Parsing is
strict on purpose: a typo such as ``strenght = 0.5`` must not silently fall back to a default
and produce a folder of wrong images, so unknown fields and wrong types raise ``RecipeError``
with a sentence naming the field. Ranges (a strength of 2) are the server's to check: the
input then fails with the server's sentence. A ``<stem>.json`` sidecar next to an input
overrides recipe fields for that one file and is checked the same way.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushlink.plugin import codec
from brushlink.plugin.errors import InvalidField
from brushlink.plugin.request import KINDS, Request

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPE_FILE = "recipe.toml"
FORMATS = ("png", "jpg", "webp")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
PROMPT_SUFFIXES = (".txt",)


class RecipeError(ValueError):
    """A recipe or a sidecar that cannot be used; the message is shown to the user as is."""


# What a recipe holds beyond the request; everything else in it is a request field.
HOTFOLDER_FIELDS = ("reference", "size", "format", "quality", "description")


@dataclass(frozen=True)
class Recipe:
    name: str  # the folder's name
    folder: Path
    request: Request
    reference: str | None = None  # path relative to the recipe folder
    format: str = "png"
    quality: int = 92  # for jpg / webp outputs
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # the fields as written

    @property
    def kind(self) -> str:
        return self.request.kind

    def accepts(self, path: Path) -> bool:
        """Whether a settled file in the recipe folder is an input of this recipe."""
        suffix = path.suffix.lower()
        if is_sidecar(path):
            return False
        if self.kind == "generate":
            return suffix in PROMPT_SUFFIXES
        return suffix in IMAGE_SUFFIXES

    def reference_path(self) -> Path | None:
        if not self.reference:
            return None
        return (self.folder / self.reference).resolve()

    def request_for(self, *, prompt: str | None = None) -> Request:
        """A fresh copy of the recipe's request for one job (a prompt file's line, say)."""
        request = Request.from_wire(self.request.to_wire())
        if prompt is not None:
            request.prompt = prompt
        for i, control in enumerate(request.controls):
            control.image = i  # the i-th control picture (see process.py)
        return request

    def with_overrides(self, data: dict[str, Any], source: str) -> Recipe:
        """A copy with the fields of a ``<stem>.json`` sidecar applied."""
        return _parse(self.name, self.folder, _merge(self.data, data), source)


# Files that travel with an input: its mask, its overrides, the pictures of its controls
# (control i's picture is <stem>.control.png for the first, <stem>.control-<i>.png after).
CONTROL_SUFFIXES = (".control.png", *(f".control-{i}.png" for i in range(1, 8)))
SIDECAR_SUFFIXES = (".mask.png", ".json", *CONTROL_SUFFIXES)


def is_sidecar(path: Path) -> bool:
    """Sidecars travel with their input; they are not inputs."""
    name = path.name.lower()
    return name.endswith(SIDECAR_SUFFIXES) or name == RECIPE_FILE


def load_recipe(folder: Path) -> Recipe:
    """Read ``folder/recipe.toml``; raises ``RecipeError`` in plain words."""
    path = folder / RECIPE_FILE
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise RecipeError(f"{path} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(
            f"{RECIPE_FILE} of recipe `{folder.name}` is not valid TOML: {exc}."
        ) from exc
    return _parse(folder.name, folder, data, f"{RECIPE_FILE} of recipe `{folder.name}`")


def load_overrides(path: Path) -> dict[str, Any]:
    """Read a ``<stem>.json`` sidecar as a dict (checked later by ``with_overrides``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecipeError(f"The sidecar {path.name} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"The sidecar {path.name} must hold a JSON object of recipe fields.")
    return data


# --------------------------------------------------------------------------- parsing


def _parse(name: str, folder: Path, data: dict[str, Any], source: str) -> Recipe:
    own = {k: data[k] for k in HOTFOLDER_FIELDS if k in data}
    fields = {k: v for k, v in data.items() if k not in HOTFOLDER_FIELDS}
    if "size" in own:
        fields.update(_parse_size(own["size"], source))
    try:
        request = codec.decode(Request, fields, strict=True)
    except InvalidField as exc:
        message = exc.message.replace("Unknown field", "unknown field")
        raise RecipeError(f"{source}: {message}") from exc
    if request.kind not in KINDS:
        raise RecipeError(
            f"{source}: kind must be one of {', '.join(KINDS)}, not `{request.kind}`."
        )
    fmt = own.get("format", "png")
    if not isinstance(fmt, str) or (fmt := fmt.lower().replace("jpeg", "jpg")) not in FORMATS:
        raise RecipeError(f"{source}: format must be one of {', '.join(FORMATS)}, not `{fmt}`.")
    quality = own.get("quality", 92)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise RecipeError(f"{source}: quality must be a whole number from 1 to 100.")
    for key in ("reference", "description"):
        if key in own and not isinstance(own[key], str):
            raise RecipeError(f"{source}: {key} must be text, not {own[key]!r}.")
    recipe = Recipe(
        name=name,
        folder=folder,
        request=request,
        reference=own.get("reference"),
        format=fmt,
        quality=quality,
        description=own.get("description", ""),
        data=dict(data),
    )
    _check_reference(recipe, source)
    return recipe


def _check_reference(recipe: Recipe, source: str) -> None:
    """A reference must be an image inside the inbox: on a shared drop folder, a path to any
    file the watcher can read would let anyone who can write a recipe publish that file."""
    ref = recipe.reference_path()
    if ref is None:
        return
    if not ref.is_relative_to(recipe.folder.resolve().parent):
        raise RecipeError(
            f"{source}: the reference image `{recipe.reference}` is outside the inbox; a "
            "recipe may only use images inside its inbox."
        )
    if not ref.is_file():
        raise RecipeError(
            f"{source}: the reference image `{recipe.reference}` does not exist (the path is "
            "relative to the recipe folder)."
        )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; tables (``[inpaint]``, ``[options]``) merge key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_size(value: Any, source: str) -> dict[str, int]:
    text = str(value).lower().replace(" ", "")
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise RecipeError(f'{source}: size must look like "512x512", not {value!r}.')
    return {"width": int(width), "height": int(height)}
