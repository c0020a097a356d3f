"""Small widgets the docker is built from: a labelled row, a fold-away section, a combo box of
the document's layers, and the lists of control layers and LoRAs."""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .options import CONTROL_TYPES, ControlLayer

LABEL_WIDTH = 74


class Row(QWidget):
    """A label and its field on one line; hiding the row hides both."""

    def __init__(self, label: str, *fields: QWidget, stretch_at: int = 0) -> None:
        super().__init__()
        box = QHBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(label)
        self.label.setFixedWidth(LABEL_WIDTH)
        box.addWidget(self.label)
        for i, widget in enumerate(fields):
            box.addWidget(widget, 1 if i == stretch_at else 0)


class Fold(QWidget):
    """A section folded away behind a small arrow button (e.g. the advanced settings)."""

    def __init__(self, title: str, folded: bool = True) -> None:
        super().__init__()
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.button = QToolButton()
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setChecked(not folded)
        self.button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.button.setAutoRaise(True)
        self.button.toggled.connect(self._toggled)
        self.body = QWidget()
        self.content = QVBoxLayout(self.body)
        self.content.setContentsMargins(8, 0, 0, 0)
        box.addWidget(self.button)
        box.addWidget(self.body)
        self._toggled(not folded)

    def _toggled(self, open_: bool) -> None:
        self.button.setArrowType(Qt.DownArrow if open_ else Qt.RightArrow)
        self.body.setVisible(open_)

    def set_open(self, open_: bool) -> None:
        self.button.setChecked(open_)


class LayerCombo(QComboBox):
    """A combo box of layer names, read again from the document each time it opens."""

    def __init__(self, layer_names: Callable[[], list[str]], empty: str | None = None) -> None:
        super().__init__()
        self._names = layer_names
        self._empty = empty
        self.refresh()

    def refresh(self) -> None:
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        if self._empty is not None:
            self.addItem(self._empty)
        self.addItems(self._names())
        index = self.findText(current)
        if index < 0 and current and current != self._empty:
            self.addItem(current)  # a layer named in saved settings that is not here now
            index = self.count() - 1
        self.setCurrentIndex(max(index, 0))
        self.blockSignals(False)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.refresh()
        super().showPopup()


def _spin(low: float, high: float, value: float, step: float = 0.05) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(2)
    spin.setValue(value)
    return spin


class ControlRow(QWidget):
    """One control layer: the layer, its type (preprocessor), ControlNet, strength; start and
    end fold away with the advanced settings."""

    changed = pyqtSignal()
    removed = pyqtSignal(object)

    def __init__(self, layer_names: Callable[[], list[str]], nets: Callable[[], list[str]]):
        super().__init__()
        self._nets = nets
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 2, 0, 2)
        top, bottom = QHBoxLayout(), QHBoxLayout()
        self.enabled = QCheckBox()
        self.enabled.setChecked(True)
        self.enabled.setToolTip("Use this control")
        self.layer = LayerCombo(layer_names)
        self.type = QComboBox()
        for key, words in CONTROL_TYPES.items():
            self.type.addItem(words, key)
        self.model = QComboBox()
        self.model.setToolTip("ControlNet")
        self.strength = _spin(0.0, 2.0, 1.0)
        self.strength.setToolTip("Strength")
        self.start, self.end = _spin(0.0, 1.0, 0.0), _spin(0.0, 1.0, 1.0)
        self.start.setToolTip("Guides from this share of the steps")
        self.end.setToolTip("… to this one")
        self.remove = QPushButton("✕")
        self.remove.setFixedWidth(24)
        self.remove.setToolTip("Remove this control")
        self.remove.clicked.connect(lambda: self.removed.emit(self))
        for widget in (self.enabled, self.layer):
            top.addWidget(widget, 1 if widget is self.layer else 0)
        top.addWidget(self.type)
        top.addWidget(self.remove)
        bottom.addWidget(self.model, 1)
        bottom.addWidget(self.strength)
        self.timing = QWidget()
        timing = QHBoxLayout(self.timing)
        timing.setContentsMargins(0, 0, 0, 0)
        timing.addWidget(QLabel("from"))
        timing.addWidget(self.start, 1)
        timing.addWidget(QLabel("to"))
        timing.addWidget(self.end, 1)
        box.addLayout(top)
        box.addLayout(bottom)
        box.addWidget(self.timing)
        self.fill_models()
        self.type.currentIndexChanged.connect(self._type_changed)
        for signal in (
            self.enabled.toggled,
            self.layer.currentTextChanged,
            self.model.currentTextChanged,
            self.strength.valueChanged,
            self.start.valueChanged,
            self.end.valueChanged,
        ):
            signal.connect(lambda *_: self.changed.emit())

    def fill_models(self) -> None:
        current = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        names = self._nets()
        self.model.addItems(names)
        if current and current not in names:
            self.model.addItem(current)
        if current:
            self.model.setCurrentText(current)
        else:
            self._pick_model()
        self.model.blockSignals(False)

    def _pick_model(self) -> None:
        """The ControlNet whose name says the type (`…lineart…`), else the first."""
        kind = self.type.currentData() or ""
        for i in range(self.model.count()):
            if kind and kind in self.model.itemText(i).lower().replace("_", ""):
                self.model.setCurrentIndex(i)
                return

    def _type_changed(self) -> None:
        self._pick_model()
        self.changed.emit()

    def value(self) -> ControlLayer:
        return ControlLayer(
            layer=self.layer.currentText(),
            model=self.model.currentText(),
            preprocessor=self.type.currentData() or "none",
            strength=self.strength.value(),
            start=self.start.value(),
            end=self.end.value(),
            enabled=self.enabled.isChecked(),
        )

    def show_value(self, control: ControlLayer) -> None:
        self.layer.refresh()
        if self.layer.findText(control.layer) < 0:
            self.layer.addItem(control.layer)
        self.layer.setCurrentText(control.layer)
        self.type.setCurrentIndex(max(0, self.type.findData(control.preprocessor)))
        if control.model and self.model.findText(control.model) < 0:
            self.model.addItem(control.model)
        if control.model:
            self.model.setCurrentText(control.model)
        self.strength.setValue(control.strength)
        self.start.setValue(control.start)
        self.end.setValue(control.end)
        self.enabled.setChecked(control.enabled)
