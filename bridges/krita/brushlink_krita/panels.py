"""The docker's lists: the document's control layers, the LoRAs of a job, and the history of
results (thumbnails that can be applied again)."""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import QSize, pyqtSignal
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import history
from .core import request
from .options import ControlLayer
from .widgets import ControlRow, _spin


class ControlsPanel(QGroupBox):
    """The document's control layers: each guides the picture through a ControlNet."""

    changed = pyqtSignal()

    def __init__(self, layer_names: Callable[[], list[str]], nets: Callable[[], list[str]]):
        super().__init__("Control layers")
        self._layer_names, self._nets = layer_names, nets
        self.rows: list[ControlRow] = []
        self.box = QVBoxLayout(self)
        self.add_button = QPushButton("Add control layer")
        self.add_button.setToolTip("Guide the picture with a layer: line art, a scribble, …")
        self.add_button.clicked.connect(lambda: self.add(None, active=True))
        self.box.addWidget(self.add_button)
        self.active_layer: Callable[[], str | None] = lambda: None
        self.show_timing = False

    def add(self, control: ControlLayer | None = None, active: bool = False) -> ControlRow:
        row = ControlRow(self._layer_names, self._nets)
        if control is not None:
            row.show_value(control)
        elif active and self.active_layer():
            row.layer.setCurrentText(self.active_layer() or "")
        row.timing.setVisible(self.show_timing)
        row.changed.connect(self.changed.emit)
        row.removed.connect(self.remove)
        self.rows.append(row)
        self.box.insertWidget(self.box.count() - 1, row)
        self.changed.emit()
        return row

    def remove(self, row: ControlRow) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self.changed.emit()

    def values(self) -> list[ControlLayer]:
        return [row.value() for row in self.rows]

    def show_values(self, controls: list[ControlLayer]) -> None:
        for row in list(self.rows):
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()
        self.blockSignals(True)
        for control in controls:
            self.add(control)
        self.blockSignals(False)

    def set_timing_visible(self, shown: bool) -> None:
        self.show_timing = shown
        for row in self.rows:
            row.timing.setVisible(shown)

    def fill_models(self) -> None:
        for row in self.rows:
            row.fill_models()


class LorasPanel(QGroupBox):
    """LoRAs for the job, each with its weight (from the server's list for the model's family)."""

    def __init__(self, names: Callable[[], list[str]]):
        super().__init__("LoRAs")
        self._names = names
        self.rows: list[tuple[QWidget, QComboBox, object]] = []
        self.box = QVBoxLayout(self)
        self.add_button = QPushButton("Add LoRA")
        self.add_button.clicked.connect(lambda: self.add())
        self.box.addWidget(self.add_button)

    def add(self, lora: request.LoraRef | None = None) -> None:
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        name = QComboBox()
        name.addItems(self._names())
        if lora is not None:
            if name.findText(lora.name) < 0:
                name.addItem(lora.name)
            name.setCurrentText(lora.name)
        weight = _spin(-4.0, 4.0, 1.0 if lora is None else lora.weight)
        weight.setToolTip("Weight (0: not applied)")
        remove = QPushButton("✕")
        remove.setFixedWidth(24)
        line.addWidget(name, 1)
        line.addWidget(weight)
        line.addWidget(remove)
        entry = (row, name, weight)
        remove.clicked.connect(lambda: self._remove(entry))
        self.rows.append(entry)
        self.box.insertWidget(self.box.count() - 1, row)

    def _remove(self, entry) -> None:
        self.rows.remove(entry)
        entry[0].setParent(None)
        entry[0].deleteLater()

    def values(self) -> list[request.LoraRef]:
        return [
            request.LoraRef(name.currentText(), weight.value())
            for _, name, weight in self.rows
            if name.currentText()
        ]

    def show_values(self, loras: list[request.LoraRef]) -> None:
        for entry in list(self.rows):
            self._remove(entry)
        for lora in loras:
            self.add(lora)

    def fill_names(self) -> None:
        names = self._names()
        for _, combo, _ in self.rows:
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if current not in names:
                combo.addItem(current)
            combo.setCurrentText(current)


class HistoryPanel(QGroupBox):
    """The document's results, newest first; any can be applied again as a layer."""

    apply_requested = pyqtSignal(str)  # an entry's id

    def __init__(self) -> None:
        super().__init__("History")
        box = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setIconSize(QSize(48, 48))
        self.list.setMaximumHeight(3 * 54 + 6)
        self.list.setWordWrap(True)
        self.list.itemDoubleClicked.connect(lambda item: self._apply(item))
        self.apply_button = QPushButton("Apply again")
        self.apply_button.setToolTip("Add the chosen result as a new layer, exactly as it came")
        self.apply_button.clicked.connect(lambda: self._apply(self.list.currentItem()))
        box.addWidget(self.list)
        box.addWidget(self.apply_button)

    def show_entries(self, entries: list[history.Entry]) -> None:
        self.list.clear()
        for entry in entries:
            image = QImage.fromData(entry.thumbnail_png(), "PNG")
            item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), entry.lines())
            item.setToolTip(entry.words())
            item.setData(256, entry.id)  # Qt.UserRole
            self.list.addItem(item)
        self.apply_button.setEnabled(bool(entries))
        if entries:
            self.list.setCurrentRow(0)

    def _apply(self, item) -> None:
        if item is not None:
            self.apply_requested.emit(item.data(256))
