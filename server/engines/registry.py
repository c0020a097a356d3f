"""The engine registry: which engine serves which model, and the default model of a request."""

from __future__ import annotations

from brushlink.plugin.capabilities import AddonCard, ModelCard
from brushlink.plugin.errors import UnknownModel, Unsupported
from brushlink.plugin.request import Request

from .base import Engine

# When a request names no model, the first model of the first engine here that serves the kind
# is used: trained models before weight-free fallbacks.
DEFAULT_PREFERENCE = ("diffusers", "builtin", "fill", "filters", "rank", "upscale")


class EngineRegistry:
    def __init__(
        self, engines: list[Engine] | None = None, defaults: dict[str, str] | None = None
    ) -> None:
        self._engines: dict[str, Engine] = {}
        self._models: list[ModelCard] | None = None
        self._addons: list[AddonCard] = []
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

    def models(self) -> list[ModelCard]:
        """The models as of the last ``refresh`` (listing may scan folders: not on every call)."""
        if self._models is None:
            self.refresh()
        return list(self._models or [])

    def addons(self) -> list[AddonCard]:
        """LoRAs, ControlNets, VAEs and embeddings, as of the last ``refresh``."""
        if self._models is None:
            self.refresh()
        return list(self._addons)

    def refresh(self) -> list[ModelCard]:
        """Ask every engine again, e.g. after checkpoints were added to a model folder."""
        found: list[ModelCard] = []
        addons: list[AddonCard] = []
        for engine in self._engines.values():
            found.extend(engine.models())
            addons.extend(engine.addons())
        self._models, self._addons = found, addons
        return found

    def resolve(self, request: Request) -> tuple[Engine, ModelCard]:
        """The engine and model card for a request, or UnknownModel / Unsupported."""
        info = self._named(request.model, request.kind) if request.model else None
        info = info or self._default(request)
        return self._engines[info.engine], info

    def _named(self, name: str, kind: str) -> ModelCard:
        models = self.models()
        matches = [m for m in models if m.name == name]
        if not matches:
            for engine in self._engines.values():
                engine.explain_missing(name)  # e.g. a pickled file of that name: say so
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
        return info

    def _default(self, request: Request) -> ModelCard:
        """The model a request gets when it names none.

        The config's default for the kind comes first. Otherwise a request whose words a
        generative model needs goes to one, and one that only transforms pixels goes to a
        weight-free engine: a `style` job naming a style, or with no prompt, goes to the
        filters; an `inpaint` with no prompt removes what is under the mask, with a
        checkpoint when one is installed, else with the weight-free fill (the built-in model
        knows only textures, so it inpaints only when a prompt asks for one).
        """
        kind, has_prompt = request.kind, bool(request.prompt.strip())
        configured = self._defaults.get(kind)
        if configured:
            return self._named(configured, kind)
        capable = [m for m in self.models() if kind in m.kinds]
        order = {e: i for i, e in enumerate(DEFAULT_PREFERENCE)}
        capable.sort(key=lambda m: order.get(m.engine, len(order)))
        if kind == "style" and (request.style is not None or not has_prompt):
            styled = [m for m in capable if m.styles]
            capable = [m for m in styled if request.style in m.styles] or styled or capable
        if kind == "inpaint" and not has_prompt:
            capable = [m for m in capable if m.engine != "builtin"] or capable
        if not capable:
            raise Unsupported(f"No installed model can do `{kind}` jobs.", field="kind")
        return capable[0]
