"""One codec for every dataclass that crosses the wire, derived from its annotations.

``encode(obj)`` turns a dataclass tree into JSON values; ``decode(cls, data)`` builds the tree
back, checking every value against its field's annotation and naming the field's path on a
mismatch (``steps``, ``inpaint.grow``, ``loras[1].weight``). There is no table of field types
kept by hand: adding a field to a dataclass is all it takes for it to travel and be checked.

What the codec understands: ``str``, ``int``, ``float`` (an integer is accepted), ``bool``,
``X | None``, ``list[X]``, ``dict[str, X]``, ``Any``, ``Literal[...]`` of strings, enums with
string values, and nested dataclasses. Rules:

* unknown keys are ignored (a newer peer may send more), unless ``strict`` (a hand-written
  recipe file, where a typo must not pass silently);
* ``null`` for a field that admits ``None`` is ``None``; for a number or string field with a
  default it means "not given"; for a list, an object or a nested part it is an error;
* a field marked ``wire(False)`` (bytes that travel as binary frames) is never encoded or read.

Nesting is bounded (``MAX_DEPTH``), so a hostile document cannot exhaust the stack.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import types
import typing
from collections.abc import Hashable
from typing import Any, TypeVar, Union, cast

from .errors import InvalidField

T = TypeVar("T")
MAX_DEPTH = 32  # the request tree is 4 deep; anything deeper is not a request

_WORDS: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "an object",
}


def wire(on: bool = True) -> dict[str, bool]:
    """Field metadata: ``field(default=None, metadata=wire(False))`` keeps a field off the wire."""
    return {"wire": on}


def on_wire(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("wire", True))


# --------------------------------------------------------------------------- encode


def encode(value: Any) -> Any:
    """A dataclass tree (or any JSON-like value) as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if on_wire(f)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- decode


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _admits_none(tp: Any) -> bool:
    return tp is Any or (_is_union(tp) and type(None) in typing.get_args(tp))


def _words(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join(_words(a) for a in typing.get_args(tp) if a is not type(None))
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in origin)
    if dataclasses.is_dataclass(origin):
        return "an object"
    return _WORDS.get(origin, getattr(origin, "__name__", str(origin)))


def _type_name(value: Any) -> str:
    return {type(None): "null", dict: "an object", list: "an array"}.get(
        type(value), type(value).__name__
    )


def _fail(path: str, tp: Any, value: Any) -> InvalidField:
    return InvalidField(f"`{path}` must be {_words(tp)}, not {_type_name(value)}.", field=path)


def decode(cls: type[T], data: Any, path: str = "", *, strict: bool = False) -> T:
    """Build a ``cls`` dataclass from JSON values, checking each field against its annotation."""
    return _dataclass(cls, data, path, strict, 0)


def _dataclass(cls: type[T], data: Any, path: str, strict: bool, depth: int) -> T:
    if not isinstance(data, dict):
        raise InvalidField(
            f"`{path or cls.__name__}` must be an object, not {_type_name(data)}.",
            field=path or None,
        )
    hints = _hints(cast(Hashable, cls))
    fields = {f.name: f for f in dataclasses.fields(cls) if on_wire(f)}  # type: ignore[arg-type]
    if strict:
        unknown = sorted(str(k) for k in data if k not in fields)
        if unknown:
            where = f" in `{path}`" if path else ""
            raise InvalidField(
                f"Unknown field `{unknown[0][:40]}`{where}; known fields: {', '.join(fields)}.",
                field=_join(path, unknown[0][:40]),
            )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        tp = hints[name]
        if name not in data:
            continue
        value = data[name]
        if value is None and not _admits_none(tp):
            if _required(f) or _container(tp):
                raise _fail(_join(path, name), tp, value)
            continue  # "not given": the default
        kwargs[name] = _value(tp, value, _join(path, name), strict, depth + 1)
    missing = [n for n, f in fields.items() if _required(f) and n not in kwargs]
    if missing:
        what = f"`{path}`" if path else f"`{getattr(cls, 'type', '') or cls.__name__}`"
        raise InvalidField(
            f"{what} needs the field(s): {', '.join(missing)}.", field=_join(path, missing[0])
        )
    return cls(**kwargs)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _container(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return origin in (list, dict) or dataclasses.is_dataclass(origin)


def _value(tp: Any, value: Any, path: str, strict: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidField(f"`{path}` is nested too deeply.", field=path)
    if tp is Any:
        return value
    if _is_union(tp):
        if value is None and type(None) in typing.get_args(tp):
            return None
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return _value(options[0], value, path, strict, depth)
        for option in options:
            try:
                return _value(option, value, path, strict, depth)
            except InvalidField:
                continue
        raise _fail(path, tp, value)
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin is typing.Literal:
        if value not in args or type(value) is not type(args[0]):
            raise _fail(path, tp, value)
        return value
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        try:
            return origin(value)
        except ValueError:
            raise _fail(path, tp, value) from None
    if dataclasses.is_dataclass(origin):
        return _dataclass(origin, value, path, strict, depth)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise _fail(path, tp, value)
        item = args[0] if args else Any
        return [_value(item, v, f"{path}[{i}]", strict, depth + 1) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, tp, value)
        item = args[1] if len(args) == 2 else Any
        return {
            str(k): _value(item, v, _join(path, str(k)), strict, depth + 1)
            for k, v in value.items()
        }
    if origin is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, tp, value)
        return float(value)
    if origin in (int, str, bool):
        if not isinstance(value, origin) or (origin is int and isinstance(value, bool)):
            raise _fail(path, tp, value)
        return value
    raise TypeError(f"the codec cannot read `{path}` of type {tp!r}")  # a bug in a dataclass
