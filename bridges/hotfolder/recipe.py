"""A recipe: ``INBOX/<name>/recipe.toml`` says what to do with every file dropped next to it.

Parsing is strict on purpose: a typo such as ``strenght = 0.5`` must not silently fall back to a
default and produce a folder of wrong images, so unknown fields and wrong types raise
``RecipeError`` with a sentence naming the field. A ``<stem>.json`` sidecar next to an input
overrides recipe fields for that one file and is checked the same way.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from brushlink.plugin.protocol import KINDS, TILE_MODES, JobSpec

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


@dataclass(frozen=True)
class Recipe:
    name: str  # the folder's name
    folder: Path
    kind: str = "style"
    model: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    strength: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    candidates: int = 1
    keep: int | None = None
    tile: str = "none"
    style: str | None = None
    reference: str | None = None  # path relative to the recipe folder
    scheduler: str | None = None
    format: str = "png"
    quality: int = 92  # for jpg / webp outputs
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)

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

    def job_spec(self, *, prompt: str | None = None) -> JobSpec:
        """The protocol's JobSpec for one job of this recipe."""
        return JobSpec(
            kind=self.kind,
            prompt=self.prompt if prompt is None else prompt,
            negative_prompt=self.negative_prompt,
            model=self.model,
            width=self.width,
            height=self.height,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            strength=self.strength,
            candidates=self.candidates,
            keep=self.keep,
            tile=self.tile,
            style=self.style,
            scheduler=self.scheduler,
            options=dict(self.options),
        )

    def with_overrides(self, data: dict[str, Any], source: str) -> Recipe:
        """A copy with the fields of a ``<stem>.json`` sidecar applied."""
        values = _check_fields(data, source)
        return replace(self, **values)


def is_sidecar(path: Path) -> bool:
    """``<stem>.mask.png`` and ``<stem>.json`` travel with their input; they are not inputs."""
    name = path.name.lower()
    return name.endswith(".mask.png") or path.suffix.lower() == ".json" or name == RECIPE_FILE


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
    values = _check_fields(data, f"{RECIPE_FILE} of recipe `{folder.name}`")
    recipe = Recipe(name=folder.name, folder=folder, **values)
    ref = recipe.reference_path()
    if ref is not None and not ref.is_file():
        raise RecipeError(
            f"{RECIPE_FILE} of recipe `{folder.name}`: the reference image `{recipe.reference}` "
            "does not exist (the path is relative to the recipe folder)."
        )
    return recipe


def load_overrides(path: Path) -> dict[str, Any]:
    """Read a ``<stem>.json`` sidecar as a dict (checked later by ``with_overrides``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecipeError(f"The sidecar {path.name} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"The sidecar {path.name} must hold a JSON object of recipe fields.")
    return data


# --------------------------------------------------------------------------- field checks

_SETTABLE = {f.name for f in fields(Recipe)} - {"name", "folder"}
_INTS = {"width", "height", "seed", "steps", "candidates", "keep", "quality"}
_FLOATS = {"strength", "guidance"}
_STRINGS = {
    "kind",
    "model",
    "prompt",
    "negative_prompt",
    "tile",
    "style",
    "reference",
    "scheduler",
    "format",
    "description",
}


def _check_fields(data: dict[str, Any], source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "size":
            values.update(_parse_size(value, source))
            continue
        if key not in _SETTABLE:
            known = ", ".join(sorted(_SETTABLE | {"size"}))
            raise RecipeError(f"{source}: unknown field `{key}`. Known fields: {known}.")
        values[key] = _check_value(key, value, source)
    kind = values.get("kind")
    if kind is not None and kind not in KINDS:
        raise RecipeError(f"{source}: kind must be one of {', '.join(KINDS)}, not `{kind}`.")
    tile = values.get("tile")
    if tile is not None and tile not in TILE_MODES:
        raise RecipeError(f"{source}: tile must be one of {', '.join(TILE_MODES)}, not `{tile}`.")
    fmt = values.get("format")
    if fmt is not None:
        fmt = values["format"] = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
        if fmt not in FORMATS:
            raise RecipeError(f"{source}: format must be one of {', '.join(FORMATS)}, not `{fmt}`.")
    strength = values.get("strength")
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise RecipeError(f"{source}: strength must be between 0 and 1, not {strength}.")
    for key in ("width", "height", "steps", "candidates", "keep"):
        if values.get(key) is not None and values[key] < 1:
            raise RecipeError(f"{source}: {key} must be at least 1, not {values[key]}.")
    return values


def _check_value(key: str, value: Any, source: str) -> Any:
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{source}: {key} must be a whole number, not {value!r}.")
        return value
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{source}: {key} must be a number, not {value!r}.")
        return float(value)
    if key in _STRINGS:
        if not isinstance(value, str):
            raise RecipeError(f"{source}: {key} must be text, not {value!r}.")
        return value
    if key == "options":
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: options must be a table of engine options.")
        return dict(value)
    raise RecipeError(f"{source}: field `{key}` cannot be set here.")  # pragma: no cover


def _parse_size(value: Any, source: str) -> dict[str, int]:
    text = str(value).lower().replace(" ", "")
    width, sep, height = text.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise RecipeError(f'{source}: size must look like "512x512", not {value!r}.')
    return {"width": int(width), "height": int(height)}
