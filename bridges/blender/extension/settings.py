"""Operator settings: keyword arguments first, the scene's settings (``scene.brushlink``) else.

Every operator declares, as operator properties, the scene settings it reads (copies of the
scene's property definitions, so ranges and defaults agree). A setting the caller passed
(``bpy.ops.brushlink.texture_fill(prompt="mossy stone")``) wins; one it did not pass comes from
the scene, so the panel's buttons (which pass nothing) use the panel's fields. The scene's
settings are only read, never written: a script's keywords leave the panel as it was.

The copies are ``SKIP_SAVE``: Blender would otherwise remember a script's last keywords and
hand them to the next press of the button, as if they had been passed.

Seeds are 32-bit unsigned, but Blender's integer properties stop at 2^31 - 1 and a string
property refuses an ``int``. So an operator takes ``seed`` as an integer (0 to 2^31 - 1, what
scripts usually pass) and ``seed_text`` as text for any seed up to 2^32 - 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import bpy

from .properties import BrushlinkSceneProperties

T = TypeVar("T")

MAX_SEED = 2**32 - 1


def _copy(scene_name: str) -> Any:
    """The scene property's definition, again, as an operator property."""
    deferred = BrushlinkSceneProperties.__annotations__[scene_name]
    if isinstance(deferred, str):  # a postponed annotation: evaluate it as Blender does
        deferred = eval(deferred, {"bpy": bpy})  # noqa: S307 - our own source text
    keywords = {k: v for k, v in deferred.keywords.items() if k not in ("update", "options")}
    return deferred.function(**keywords, options={"SKIP_SAVE"})


def _name(description: str) -> Any:
    return bpy.props.StringProperty(  # a datablock by name (operators cannot hold pointers)
        name="Name", description=description, default="", options={"SKIP_SAVE"}
    )


NAMED = {
    "object": "An object's name; empty: the active object",
    "image": "An image's name; empty: the image in the editor, else the panel's",
    "mask": "A mask image's name; empty: the panel's mask, else the image's transparency",
    "reference": "A reference image's name; empty: the panel's",
}

SEED_KEYWORDS: dict[str, Any] = {
    "seed": lambda: bpy.props.IntProperty(
        name="Seed",
        description="A seed up to 2147483647 (larger ones: seed_text)",
        min=0,
        default=0,
        options={"SKIP_SAVE"},
    ),
    "seed_text": lambda: bpy.props.StringProperty(
        name="Seed (text)",
        description="Any seed from 0 to 4294967295 as text; empty: a new seed",
        default="",
        options={"SKIP_SAVE"},
    ),
}


def keywords(
    scene: Mapping[str, str], *, named: tuple[str, ...] = (), seed: bool = False
) -> Callable[[type[T]], type[T]]:
    """Class decorator: give the operator the scene settings ``scene`` (keyword -> the scene's
    property name) as keyword arguments, plus datablocks by name and, with ``seed``, the seed."""

    def decorate(cls: type[T]) -> type[T]:
        own = dict(cls.__dict__.get("__annotations__", {}))
        added = {key: _copy(prop) for key, prop in scene.items()}
        added.update({key: _name(NAMED[key]) for key in named})
        if seed:
            added.update({key: make() for key, make in SEED_KEYWORDS.items()})
        cls.__annotations__ = {**added, **own}
        cls.scene_keywords = dict(scene)  # type: ignore[attr-defined]
        return cls

    return decorate


class Settings:
    """What one call of an operator uses: its keywords, the scene's settings where none."""

    def __init__(
        self, op: bpy.types.Operator | None, context: Any, scene_keywords: Mapping[str, str] = ()
    ) -> None:
        """``op`` None: the scene's settings alone (``scene_keywords`` maps the names)."""
        self._op = op
        self._scene = context.scene.brushlink
        self._map: dict[str, str] = dict(getattr(type(op), "scene_keywords", scene_keywords))

    def passed(self, key: str) -> bool:
        return self._op is not None and bool(self._op.properties.is_property_set(key))

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        if key in self._map:
            source = self._op if self.passed(key) else self._scene
            return getattr(source, key if source is self._op else self._map[key])
        if key in NAMED:
            return getattr(self._op, key) if self.passed(key) else ""
        raise AttributeError(key)

    def seed(self) -> int | None:
        """The seed: ``seed_text``, else ``seed``, else the scene's text (empty: random)."""
        op: Any = self._op
        if self.passed("seed_text"):
            return parse_seed(op.seed_text)
        if self.passed("seed"):
            return int(op.seed)
        return parse_seed(self._scene.seed)

    def datablock(self, key: str, collection: Any) -> Any:
        """The datablock named by keyword ``key`` (None when not passed); raises ValueError
        with a sentence when there is none of that name."""
        name = self.__getattr__(key)
        if not name:
            return None
        found = collection.get(name)
        if found is None:
            raise ValueError(f"There is no {key} named “{name}”.")
        return found


def parse_seed(text: str) -> int | None:
    """A seed as text: empty = random, else a whole number from 0 to 2^32 - 1 (text, because
    Blender's integer properties stop at 2^31 - 1)."""
    text = text.strip()
    if not text or text == "-1":
        return None
    if not text.isdigit() or int(text) > MAX_SEED:
        raise ValueError(f"The seed must be empty (random) or a whole number up to {MAX_SEED}.")
    return int(text)
