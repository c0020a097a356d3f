"""The brushlink docker: connection status, the prompt and options, Generate/Cancel, progress,
live previews, and Apply/Discard for the last result.

Everything here runs on Krita's main thread; network waits happen on worker threads (see
runner.py) and come back through a QTimer, so the UI never blocks. Errors are shown in the
status line, never as a traceback dialog.
"""

from __future__ import annotations

from krita import DockWidget, Krita
from PyQt5 import sip
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import api
from .core import errors, protocol, request
from .options import KINDS, KritaJob
from .runner import as_brushlink_error, in_background
from .settings import Settings, load_from_document

DEFAULT_STYLES = ("sketch", "pencil-color", "watercolor", "oil", "cartoon", "detail")
SERVER_DEFAULT = "(server default)"
NO_REFERENCE = "(none)"


class LayerCombo(QComboBox):
    """A combo box of layer names, read again from the document each time it opens."""

    def __init__(self, refresh) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self._refresh()
        super().showPopup()


class BrushlinkDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("brushlink")
        self.document_override = None  # scripts driving the docker without a view set this
        self.job = None
        self.result_node = None
        self.models: list = []  # the server's ModelCards
        self._build()
        self.reconnect()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        root = QWidget(self)
        box = QVBoxLayout(root)

        status_row = QHBoxLayout()
        self.status = QLabel("Not connected")
        self.status.setWordWrap(True)
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.clicked.connect(self.reconnect)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.reconnect_button)
        box.addLayout(status_row)

        self.settings_box = QGroupBox("Server")
        self.settings_box.setCheckable(True)
        self.settings_box.setChecked(False)
        settings_form = QFormLayout(self.settings_box)
        settings = Settings.load()
        self.url = QLineEdit(settings.url)
        self.url.setPlaceholderText("local server (BRUSHLINK_HOME)")
        self.token = QLineEdit(settings.token)
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setPlaceholderText("token file in BRUSHLINK_HOME")
        save = QPushButton("Save and reconnect")
        save.clicked.connect(self.save_settings)
        settings_form.addRow("URL", self.url)
        settings_form.addRow("Token", self.token)
        settings_form.addRow(save)
        box.addWidget(self.settings_box)

        form = QFormLayout()
        self.mode = QComboBox()
        self.mode.addItems(KINDS)
        self.mode.currentTextChanged.connect(self._fill_models)
        self.model = QComboBox()
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("What to paint")
        self.prompt.setMaximumHeight(80)
        self.negative = QLineEdit()
        self.use_strength = QCheckBox("from canvas")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(0.6)
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(self.use_strength)
        self.seed = QDoubleSpinBox()  # seeds are 32-bit unsigned: beyond a QSpinBox's int
        self.seed.setDecimals(0)
        self.seed.setRange(0, 2**32 - 1)
        self.random_seed = QCheckBox("random")
        self.random_seed.setChecked(True)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        self.candidates = QSpinBox()
        self.candidates.setRange(1, 8)
        self.keep = QSpinBox()
        self.keep.setRange(0, 8)
        self.keep.setSpecialValueText("all")
        self.tile = QComboBox()
        self.tile.addItems(request.TILE_MODES)
        self.style_name = QComboBox()
        self.style_name.setEditable(True)
        self.reference = LayerCombo(lambda: self._fill_references(self.document()))
        self.exclude = QLineEdit()
        self.exclude.setPlaceholderText("layer names, comma separated")
        form.addRow("Mode", self.mode)
        form.addRow("Model", self.model)
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        form.addRow("Strength", strength_row)
        form.addRow("Seed", seed_row)
        form.addRow("Candidates", self.candidates)
        form.addRow("Keep", self.keep)
        form.addRow("Tile", self.tile)
        form.addRow("Style", self.style_name)
        form.addRow("Reference layer", self.reference)
        form.addRow("Hide layers", self.exclude)
        box.addLayout(form)

        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        box.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        box.addWidget(self.progress)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(96)
        box.addWidget(self.preview)

        result_row = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply_result)
        self.discard_button = QPushButton("Discard")
        self.discard_button.clicked.connect(self.discard_result)
        result_row.addWidget(self.apply_button)
        result_row.addWidget(self.discard_button)
        box.addLayout(result_row)
        box.addStretch(1)
        self._set_result(None)
        self.setWidget(root)

    # ------------------------------------------------------------------ connection

    def save_settings(self) -> None:
        settings = Settings.load()
        settings.url, settings.token = self.url.text().strip(), self.token.text().strip()
        settings.save()
        self.reconnect()

    def _where(self) -> dict:
        return {"url": self.url.text().strip() or None, "token": self.token.text().strip() or None}

    def reconnect(self) -> None:
        self.status.setText("Connecting…")
        # Resolve the connection here: Krita's settings may only be read on the main thread.
        # Asked again: open a fresh connection, so a restarted server's models show.
        where = self._where()
        connection = api.connection(**where) if self.job else api.reconnect(**where)
        in_background(connection.welcome, self._connected)

    def _gone(self) -> bool:
        """True once Qt has deleted this docker (its window closed while a job was out)."""
        return sip.isdeleted(self)

    def _connected(self, welcome, error) -> None:
        if self._gone():
            return
        if error is not None:
            self.status.setText(f"Not connected: {error.message}")
            return
        self.models = list(welcome.models)
        self.status.setText(f"Connected, {len(self.models)} model(s)")
        self._fill_models()

    def _fill_models(self) -> None:
        mode = self.mode.currentText()
        current = self.model.currentText()
        self.model.clear()
        self.model.addItem(SERVER_DEFAULT)
        styles: list[str] = []
        for info in self.models:
            if mode in info.kinds:
                self.model.addItem(info.name)
                styles += [s for s in info.styles if s not in styles]
        if current:
            index = self.model.findText(current)
            self.model.setCurrentIndex(max(index, 0))
        style = self.style_name.currentText()
        self.style_name.clear()
        self.style_name.addItems(styles or list(DEFAULT_STYLES))
        if style:
            self.style_name.setEditText(style)

    # ------------------------------------------------------------------ document

    def document(self):
        return self.document_override or Krita.instance().activeDocument()

    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's API name
        document = self.document()
        self._fill_references(document)
        saved = load_from_document(document) if document is not None else None
        if saved is not None:
            self.show_options(saved)

    def _fill_references(self, document) -> None:
        current = self.reference.currentText()
        self.reference.clear()
        self.reference.addItem(NO_REFERENCE)
        if document is not None:
            for node in document.topLevelNodes():
                self.reference.addItem(node.name())
        self.reference.setCurrentIndex(max(0, self.reference.findText(current)))

    def options(self) -> KritaJob:
        model = self.model.currentText()
        reference = self.reference.currentText()
        kind = self.mode.currentText()
        strength = self.strength.value() if self.use_strength.isChecked() else None
        if kind == "generate" and strength is not None:
            kind = "style"  # from the canvas: image-to-image toward the prompt
        req = request.Request(
            kind=kind,
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.text().strip(),
            model=None if model in ("", SERVER_DEFAULT) else model,
            strength=strength,
            seed=None if self.random_seed.isChecked() else int(self.seed.value()),
            candidates=self.candidates.value(),
            keep=self.keep.value() or None,
            tile=self.tile.currentText(),
            style=(self.style_name.currentText().strip() or None) if kind == "style" else None,
        )
        return KritaJob(
            request=req,
            reference=None if reference in ("", NO_REFERENCE) else reference,
            exclude=[n.strip() for n in self.exclude.text().split(",") if n.strip()],
        )

    def show_options(self, job: KritaJob) -> None:
        req = job.request
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
        self.tile.setCurrentText(req.tile)
        if req.style:
            self.style_name.setEditText(req.style)
        self.exclude.setText(", ".join(job.exclude))

    # ------------------------------------------------------------------ jobs

    def generate(self) -> None:
        if self.job is not None:
            return
        try:
            options = self.options()
            self.job = api.start(
                options,
                self.document(),
                on_done=self._finished,
                on_event=self._event,
                **self._where(),
            )
        except Exception as exc:  # shown in the docker, not as a traceback dialog
            self.status.setText(f"Cannot start: {as_brushlink_error(exc).message}")
            return
        self.status.setText("Working…")
        self.progress.setRange(0, 0)  # busy until the first progress event
        self.preview.clear()
        self.generate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def cancel(self) -> None:
        if self.job is not None:
            self.status.setText("Cancelling…")
            self.job.cancel()

    def _event(self, event) -> None:
        if self._gone():
            return
        if isinstance(event, protocol.Queued):
            self.status.setText(f"Queued ({event.position} ahead)")
        elif isinstance(event, protocol.Started):
            self.status.setText("Running…")
        elif isinstance(event, protocol.Progress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.step)
        elif isinstance(event, protocol.Preview) and event.image:
            image = QImage.fromData(event.image, "PNG")
            if not image.isNull():
                pixmap = QPixmap.fromImage(image)
                width = max(64, self.preview.width())
                self.preview.setPixmap(pixmap.scaledToWidth(width, Qt.SmoothTransformation))

    def _finished(self, node, error) -> None:
        if self._gone():
            return
        self.job = None
        self.generate_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if error is None else 0)
        if isinstance(error, errors.JobWasCancelled):
            self.status.setText("Cancelled")
            return
        if error is not None:
            self.status.setText(f"Failed: {error.message}")
            return
        self.status.setText(f"Done: {node.name()}")
        self._set_result(node)

    def _set_result(self, node) -> None:
        self.result_node = node
        self.apply_button.setEnabled(node is not None)
        self.discard_button.setEnabled(node is not None)

    def apply_result(self) -> None:
        if self.result_node is None:
            return
        try:
            api.apply(self.result_node)
        except Exception as exc:
            self.status.setText(f"Cannot apply: {as_brushlink_error(exc).message}")
            return
        self._set_result(None)

    def discard_result(self) -> None:
        if self.result_node is None:
            return
        try:
            api.discard(self.result_node)
        except Exception as exc:
            self.status.setText(f"Cannot discard: {as_brushlink_error(exc).message}")
            return
        self._set_result(None)
