"""The docker's fields: which mode shows which, their defaults, and reading them into a
``KritaJob`` (and back, from the settings a document keeps).

``FIELDS`` maps each field to the modes that show it and whether it sits with the advanced
settings (folded away). The control layers, LoRAs and VAE show only where the server has some
for the chosen model's family; refine only where it has a checkpoint to refine with.
"""

from __future__ import annotations

from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from .core import request
from .live import LIVE_STEPS
from .options import KritaJob
from .panels import ControlsPanel, HistoryPanel, LorasPanel
from .widgets import Fold, LayerCombo, Row, _spin

MODES = ("generate", "inpaint", "style", "upscale", "live")
DEFAULT_STYLES = ("sketch", "pencil-color", "watercolor", "oil", "cartoon", "detail")
SERVER_DEFAULT = "(server default)"
NO_REFERENCE = "(none)"
OWN_VAE = "(the checkpoint's own)"
PROMPTED = ("generate", "inpaint", "style", "live")
# field -> (the modes that show it, advanced)
FIELDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "prompt": (PROMPTED, False),
    "strength": (("generate", "style", "live"), False),
    "style_name": (("style",), False),
    "reference": (("style",), False),
    "candidates": (("generate", "inpaint", "style"), False),
    "tile": (("generate",), False),
    "scale": (("upscale",), False),
    "refine": (("upscale",), False),
    "controls": (PROMPTED, False),
    "loras": (PROMPTED, False),
    "negative": (PROMPTED, True),
    "seed": (PROMPTED, True),
    "keep": (("generate", "inpaint", "style"), True),
    "steps": (PROMPTED, True),
    "guidance": (PROMPTED, True),
    "vae": (PROMPTED, True),
    "edges": (("inpaint",), True),
    "exclude": (("inpaint", "style", "upscale", "live"), True),
}
# which add-on type a field needs the server to have
ADDON_FIELDS = {"controls": "controlnet", "loras": "lora", "vae": "vae"}


class Form:
    """Mixed into the docker: the fields, built into ``box``."""

    models: list
    addons: list

    def build_form(self, box) -> None:
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.model = QComboBox()
        self.model.currentTextChanged.connect(lambda _: self._model_changed())
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("What to paint")
        self.prompt.setMaximumHeight(64)
        self.use_strength = QCheckBox("from canvas")
        self.use_strength.setToolTip("Start from the canvas (image to image) with this strength")
        self.strength = _spin(0.0, 1.0, 0.6)
        self.style_name = QComboBox()
        self.style_name.setEditable(True)
        self.reference = LayerCombo(self.layer_names, NO_REFERENCE)
        self.candidates = QSpinBox()
        self.candidates.setRange(1, 8)
        self.tile = QComboBox()
        self.tile.addItems(request.TILE_MODES)
        self.scale = QComboBox()
        self.refine = QCheckBox("with")
        self.refine.setToolTip("Redraw the upscaled picture with a checkpoint")
        self.refine_model = QComboBox()
        self.refine_strength = _spin(0.0, 1.0, 0.3)
        self.refine_strength.setToolTip("How far the redraw may move from the upscaled picture")
        for widget in (self.refine_model, self.refine_strength):
            widget.setEnabled(False)
            self.refine.toggled.connect(widget.setEnabled)
        self.controls_panel = ControlsPanel(
            self.layer_names, lambda: self.addon_names("controlnet")
        )
        self.controls_panel.active_layer = self._active_layer_name
        self.loras_panel = LorasPanel(lambda: self.addon_names("lora"))
        self.negative = QLineEdit()
        self.negative.setPlaceholderText("What to avoid")
        self.seed = QDoubleSpinBox()  # seeds are 32-bit unsigned: beyond a QSpinBox's int
        self.seed.setDecimals(0)
        self.seed.setRange(0, 2**32 - 1)
        self.random_seed = QCheckBox("random")
        self.random_seed.setChecked(True)
        self.keep = QSpinBox()
        self.keep.setRange(0, 8)
        self.keep.setSpecialValueText("all")
        self.steps = QSpinBox()
        self.steps.setRange(0, 200)
        self.steps.setSpecialValueText("model's")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 30.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setSpecialValueText("model's")
        self.vae = QComboBox()
        self.grow, self.feather = QSpinBox(), QSpinBox()
        for spin, word in ((self.grow, "grow"), (self.feather, "feather")):
            spin.setRange(-1, 512)
            spin.setPrefix(f"{word} ")
            spin.setSuffix(" px")
            spin.setSpecialValueText(f"{word}: auto")
            spin.setValue(-1)
        self.grow.setToolTip("Grow the selection by this many pixels")
        self.feather.setToolTip("Feather its edge over this many pixels")
        self.exclude = QLineEdit()
        self.exclude.setPlaceholderText("layer names, comma separated")

        self.fields: dict[str, QWidget] = {
            "prompt": Row("Prompt", self.prompt),
            "strength": Row("Strength", self.strength, self.use_strength),
            "style_name": Row("Style", self.style_name),
            "reference": Row("Reference", self.reference),
            "candidates": Row("Candidates", self.candidates),
            "tile": Row("Tile", self.tile),
            "scale": Row("Scale", self.scale),
            "refine": Row(
                "Refine", self.refine, self.refine_model, self.refine_strength, stretch_at=1
            ),
            "controls": self.controls_panel,
            "loras": self.loras_panel,
            "negative": Row("Negative", self.negative),
            "seed": Row("Seed", self.seed, self.random_seed),
            "keep": Row("Keep", self.keep),
            "steps": Row("Steps", self.steps),
            "guidance": Row("Guidance", self.guidance),
            "vae": Row("VAE", self.vae),
            "edges": Row("Edge", self.grow, self.feather, stretch_at=-1),
            "exclude": Row("Hide layers", self.exclude),
        }
        self.fields["refine"].setToolTip("Redraw the upscaled picture with a checkpoint")
        box.addWidget(Row("Mode", self.mode))
        box.addWidget(Row("Model", self.model))
        self.advanced = Fold("Advanced")
        self.advanced.button.toggled.connect(self.controls_panel.set_timing_visible)
        for name, widget in self.fields.items():
            (self.advanced.content if FIELDS[name][1] else box).addWidget(widget)
        box.addWidget(self.advanced)
        self.history_panel = HistoryPanel()

    # ------------------------------------------------------------------ what shows

    def _card(self):
        return next((m for m in self.models if m.name == self.model.currentText()), None)

    def _family(self) -> str | None:
        card = self._card()
        return card.family if card is not None else None

    def addon_names(self, kind: str) -> list[str]:
        """The server's add-ons of ``kind`` that fit the chosen model's family."""
        family = self._family()
        return [
            a.name
            for a in self.addons
            if a.type == kind and (not family or not a.family or a.family == family)
        ]

    def _takes(self, kind: str) -> bool:
        """Whether the chosen model (or, for the server's default, any model of the mode)
        takes ``kind`` add-ons, and the server has some for it."""
        card, job_kind = self._card(), self._job_kind()
        cards = [card] if card is not None else [m for m in self.models if job_kind in m.kinds]
        return any(kind in c.accepts.addons for c in cards) and bool(self.addon_names(kind))

    def _has_styles(self) -> bool:
        card = self._card()
        if card is not None:
            return bool(card.styles)
        return not self.models or any(m.styles for m in self.models if "style" in m.kinds)

    def _job_kind(self) -> str:
        mode = self.mode.currentText()
        return "style" if mode == "live" else mode

    def shown_fields(self) -> set[str]:
        """The fields the current mode shows (advanced ones when unfolded)."""
        mode = self.mode.currentText()
        shown = set()
        for name, (modes, _) in FIELDS.items():
            if mode not in modes:
                continue
            if name in ADDON_FIELDS and not self._takes(ADDON_FIELDS[name]):
                continue
            if name == "refine" and not self._checkpoints():
                continue
            if name == "style_name" and not self._has_styles():
                continue  # a checkpoint restyles by its prompt alone
            shown.add(name)
        return shown

    def show_mode_fields(self) -> None:
        shown = self.shown_fields()
        for name, widget in self.fields.items():
            widget.setVisible(name in shown)
        mode = self.mode.currentText()
        self.use_strength.setVisible(mode == "generate")
        self.steps.setSpecialValueText(f"quick ({LIVE_STEPS})" if mode == "live" else "model's")
        self.prompt.setPlaceholderText(
            "What to paint (empty: remove what is selected)" if mode == "inpaint" else
            "What to paint"
        )  # fmt: skip

    def _checkpoints(self) -> list[str]:
        return [m.name for m in self.models if m.family and "generate" in m.kinds]

    def fill_models(self) -> None:
        kind, current = self._job_kind(), self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem(SERVER_DEFAULT)
        self.model.addItems([m.name for m in self.models if kind in m.kinds])
        self.model.setCurrentIndex(max(self.model.findText(current), 0))
        self.model.blockSignals(False)
        self._model_changed()

    def _model_changed(self) -> None:
        card = self._card()
        cards = [card] if card else [m for m in self.models if self._job_kind() in m.kinds]
        styles = [s for c in cards for s in c.styles]
        _refill(self.style_name, list(dict.fromkeys(styles)) or list(DEFAULT_STYLES), True)
        scales = sorted({s for c in cards for s in c.accepts.scales}) or [2, 4]
        _refill(self.scale, [f"×{s}" for s in scales])
        _refill(self.refine_model, self._checkpoints())
        _refill(self.vae, [OWN_VAE, *self.addon_names("vae")])
        self.controls_panel.fill_models()
        self.loras_panel.fill_names()
        self.show_mode_fields()

    def _active_layer_name(self) -> str | None:
        document = self.document()
        node = document.activeNode() if document is not None else None
        return node.name() if node is not None else None

    # ------------------------------------------------------------------ settings <-> job

    def options(self) -> KritaJob:
        mode, shown = self.mode.currentText(), self.shown_fields()
        kind = self._job_kind()
        model = self.model.currentText()
        strength = None
        if mode in ("style", "live") or (mode == "generate" and self.use_strength.isChecked()):
            strength = self.strength.value()
        if kind == "generate" and strength is not None:
            kind = "style"  # from the canvas: image-to-image toward the prompt
        req = request.Request(
            kind=kind,
            model=None if model in ("", SERVER_DEFAULT) else model,
            strength=strength,
        )
        if mode != "upscale":
            req.prompt = self.prompt.toPlainText().strip()
            req.negative_prompt = self.negative.text().strip()
            req.seed = None if self.random_seed.isChecked() else int(self.seed.value())
            req.steps = self.steps.value() or None
            req.guidance = self.guidance.value() or None
            req.tile = self.tile.currentText() if mode == "generate" else "none"
            if mode != "live":
                req.candidates, req.keep = self.candidates.value(), self.keep.value() or None
        if kind == "style" and "style_name" in shown:
            req.style = self.style_name.currentText().strip() or None
        if "loras" in shown:
            req.loras = self.loras_panel.values()
        if "vae" in shown and self.vae.currentText() not in ("", OWN_VAE):
            req.vae = self.vae.currentText()
        if mode == "inpaint":
            req.inpaint.grow = None if self.grow.value() < 0 else self.grow.value()
            req.inpaint.feather = None if self.feather.value() < 0 else self.feather.value()
        if mode == "upscale":
            req.upscale.scale = int(self.scale.currentText().lstrip("×") or 2)
            if self.refine.isChecked() and self.refine_model.currentText():
                req.upscale.refine = self.refine_model.currentText()
                req.upscale.strength = self.refine_strength.value()
        reference = self.reference.currentText()
        return KritaJob(
            request=req,
            reference=None if mode != "style" or reference in ("", NO_REFERENCE) else reference,
            exclude=[n.strip() for n in self.exclude.text().split(",") if n.strip()],
            controls=self.controls_panel.values(),
            use_controls="controls" in shown,  # kept with the document either way
        )

    def show_options(self, job: KritaJob) -> None:
        req = job.request
        if req.kind in MODES and req.kind != self.mode.currentText():
            self.mode.setCurrentText(req.kind)
        self.prompt.setPlainText(req.prompt)
        self.negative.setText(req.negative_prompt)
        if req.model:
            if self.model.findText(req.model) < 0:
                self.model.addItem(req.model)
            self.model.setCurrentText(req.model)
        self.use_strength.setChecked(req.strength is not None)
        if req.strength is not None:
            self.strength.setValue(req.strength)
        self.random_seed.setChecked(req.seed is None)
        if req.seed is not None:
            self.seed.setValue(req.seed)
        self.candidates.setValue(req.candidates)
        self.keep.setValue(req.keep or 0)
        self.steps.setValue(req.steps or 0)
        self.guidance.setValue(req.guidance or 0.0)
        self.tile.setCurrentText(req.tile)
        if req.style:
            self.style_name.setEditText(req.style)
        self.exclude.setText(", ".join(job.exclude))
        self.loras_panel.show_values(req.loras)
        self.controls_panel.show_values(job.controls)


def _refill(combo: QComboBox, items: list[str], editable_text: bool = False) -> None:
    """New items, keeping the current choice when it is still there."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    if editable_text and current:
        combo.setEditText(current)
    elif current in items:
        combo.setCurrentText(current)
    combo.blockSignals(False)
