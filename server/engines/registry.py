"""The engine registry: which engine serves which model, and the default model per kind."""

from __future__ import annotations

from brushlink.plugin.errors import UnknownModel, Unsupported

from .base import Engine, ModelInfo

# When a request names no model, the first model of the first engine here that serves the kind
# is used: trained models before weight-free fallbacks.
DEFAULT_PREFERENCE = ("diffusers", "builtin", "fill", "filters", "rank")


class EngineRegistry:
    def __init__(
        self, engines: list[Engine] | None = None, defaults: dict[str, str] | None = None
    ) -> None:
        self._engines: dict[str, Engine] = {}
        self._models: list[ModelInfo] | None = None
        self._defaults = dict(defaults or {})  # kind -> model name, from config
        for engine in engines or []:
            self.register(engine)

    def register(self, engine: Engine) -> None:
        self._engines[engine.name] = engine
        self._models = None

    def engines(self) -> list[Engine]:
        return list(self._engines.values())

    def engine(self, name: str) -> Engine:
        return self._engines[name]

    def models(self) -> list[ModelInfo]:
        """The models as of the last ``refresh`` (listing may scan folders: not on every call)."""
        if self._models is None:
            self.refresh()
        return list(self._models or [])

    def refresh(self) -> list[ModelInfo]:
        """Ask every engine again, e.g. after checkpoints were added to a model folder."""
        found: list[ModelInfo] = []
        for engine in self._engines.values():
            found.extend(engine.models())
        self._models = found
        return found

    def resolve(
        self, name: str | None, kind: str, *, style: str | None = None, prompt: str = ""
    ) -> tuple[Engine, ModelInfo]:
        """Find the model for a request, or raise UnknownModel / Unsupported.

        With no model named, a `style` job that names a style, or has no prompt for a
        generative model to follow, goes to a model with named styles (the filters).
        """
        models = self.models()
        if name is None and kind == "style" and (style is not None or not prompt.strip()):
            knows = [m for m in models if kind in m.kinds and m.styles]
            named = [m for m in knows if style in m.styles]
            if named or knows:
                info = (named or knows)[0]
                return self._engines[info.engine], info
        if name is None:
            name = self._defaults.get(kind)
        if name is None:
            order = {e: i for i, e in enumerate(DEFAULT_PREFERENCE)}
            capable = [m for m in models if kind in m.kinds]
            if not capable:
                raise Unsupported(f"No installed model can do `{kind}` jobs.", field="kind")
            capable.sort(key=lambda m: order.get(m.engine, len(order)))
            info = capable[0]
        else:
            matches = [m for m in models if m.name == name]
            if not matches:
                names = ", ".join(sorted(m.name for m in models)) or "none"
                raise UnknownModel(
                    f"There is no model called `{name[:80]}`. Installed models: {names}.",
                    field="model",
                )
            info = matches[0]
            if kind not in info.kinds:
                raise Unsupported(
                    f"The model `{info.name}` cannot do `{kind}` jobs; it can do "
                    f"{', '.join(info.kinds)}.",
                    field="kind",
                )
        return self._engines[info.engine], info
