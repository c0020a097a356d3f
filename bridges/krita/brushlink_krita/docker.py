"""The brushlink docker: connection status, a mode, only the fields that mode needs (advanced
ones folded away), Generate/Cancel, progress and previews, Apply/Discard, and the history.

Modes: generate, inpaint, style, upscale, live. ``FIELDS`` says which fields each shows; the
control layers, LoRAs and VAE show only when the server has some for the model's family.
Everything here runs on Krita's main thread; network waits happen on worker threads (see
runner.py) and come back through a QTimer, so the UI never blocks. Errors are shown in the
status line, never as a traceback dialog.
"""

from __future__ import annotations

from krita import DockWidget, Krita
from PyQt5 import sip
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from . import api, history
from .core import errors, protocol
from .docker_form import FIELDS, MODES, Form
from .images import as_qimage
from .layers import PREFIX as layers_prefix
from .live import LiveSession
from .runner import as_brushlink_error, in_background
from .settings import Settings, load_from_document, save_to_document
from .widgets import Fold

ACTIONS = {
    "generate": "Generate",
    "inpaint": "Inpaint",
    "style": "Restyle",
    "upscale": "Upscale",
    "live": "Start live",
}
__all__ = ["FIELDS", "MODES", "BrushlinkDocker"]


class BrushlinkDocker(DockWidget, Form):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("brushlink")
        self.document_override = None  # scripts driving the docker without a view set this
        self.job = None
        self.live: LiveSession | None = None
        self.result_node = None
        self.models: list = []  # the server's ModelCards
        self.addons: list = []  # the server's AddonCards
        self._build()
        history.listeners.append(self._history_grew)
        self.reconnect()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        root = QWidget()
        box = QVBoxLayout(root)
        status_row = QHBoxLayout()
        self.status = QLabel("Not connected")
        self.status.setWordWrap(True)
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.clicked.connect(self.reconnect)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.reconnect_button)
        box.addLayout(status_row)
        box.addWidget(self._server_box())
        self.build_form(box)

        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        box.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        box.addWidget(self.progress)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setVisible(False)  # shown with the server's first preview of a job
        box.addWidget(self.preview)
        result_row = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply_result)
        self.discard_button = QPushButton("Discard")
        self.discard_button.clicked.connect(self.discard_result)
        result_row.addWidget(self.apply_button)
        result_row.addWidget(self.discard_button)
        box.addLayout(result_row)
        box.addWidget(self.history_panel)
        box.addStretch(1)
        self.history_panel.apply_requested.connect(self.apply_again)
        self.controls_panel.changed.connect(self._controls_changed)
        self.mode.currentTextChanged.connect(self._mode_changed)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(root)
        # wide enough for every field: the dock column grows rather than cutting them off
        bar = scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(root.minimumSizeHint().width() + bar + 4)
        self._set_result(None)
        self._mode_changed()
        self.setWidget(scroll)

    def _server_box(self) -> Fold:
        self.settings_box = Fold("Server")
        body = QWidget()
        form = QFormLayout(body)
        form.setContentsMargins(0, 0, 0, 0)
        self.settings_box.content.addWidget(body)
        settings = Settings.load()
        self.url = QLineEdit(settings.url)
        self.url.setPlaceholderText("local server (BRUSHLINK_HOME)")
        self.token = QLineEdit(settings.token)
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setPlaceholderText("token file in BRUSHLINK_HOME")
        save = QPushButton("Save and reconnect")
        save.clicked.connect(self.save_settings)
        form.addRow("URL", self.url)
        form.addRow("Token", self.token)
        form.addRow(save)
        return self.settings_box

    def _mode_changed(self) -> None:
        mode = self.mode.currentText()
        if self.live is not None and mode != "live":
            self.stop_live()
        self.fill_models()
        self.show_mode_fields()
        live = mode == "live"
        self.generate_button.setText("Stop live" if self.live else ACTIONS[mode])
        for widget in (self.discard_button, self.cancel_button, self.progress):
            widget.setVisible(not live)
        self.apply_button.setToolTip(
            "Keep the live picture as a layer"
            if live
            else "Keep the result (a group: the visible candidate)"
        )
        if live:
            self.apply_button.setEnabled(self.live is not None)
        else:
            self._set_result(self.result_node)

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
        busy = self.job or self.live
        connection = api.connection(**where) if busy else api.reconnect(**where)
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
        self.models, self.addons = list(welcome.models), list(welcome.addons)
        self.status.setText(f"Connected, {len(self.models)} model(s)")
        self._mode_changed()

    # ------------------------------------------------------------------ document

    def document(self):
        return self.document_override or Krita.instance().activeDocument()

    def layer_names(self) -> list[str]:
        """The document's layers, groups' layers included, top first (not brushlink's own)."""
        document = self.document()
        found: list[str] = []

        def walk(parent) -> None:
            for node in reversed(parent.childNodes()):
                if node.type().endswith("mask") or node.name().startswith(layers_prefix):
                    continue
                found.append(node.name())
                if node.type() == "grouplayer":
                    walk(node)

        if document is not None:
            walk(document.rootNode())
        return found

    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's API name
        document = self.document()
        self.reference.refresh()
        saved = load_from_document(document) if document is not None else None
        if saved is not None:
            self.show_options(saved)
        self.show_history()

    def _history_grew(self, document) -> None:
        if not self._gone() and document == self.document():
            self.show_history()

    def show_history(self) -> None:
        self.history_panel.show_entries(history.entries(self.document()))

    def _controls_changed(self) -> None:
        document = self.document()
        if document is not None:
            try:  # the document keeps its control layers, like its last settings
                save_to_document(document, self.options())
            except Exception as exc:
                self.status.setText(f"Cannot keep the controls: {as_brushlink_error(exc).message}")

    # ------------------------------------------------------------------ jobs

    def generate(self) -> None:
        if self.mode.currentText() == "live":
            self.stop_live() if self.live else self.start_live()
            return
        if self.job is not None:
            return
        try:
            self.job = api.start(
                self.options(),
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
        self.preview.setVisible(False)
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
            try:
                pixmap = QPixmap.fromImage(as_qimage(event.image))
            except errors.BrushlinkError:
                return
            self.preview.setVisible(True)
            width = min(max(64, self.preview.width()), 256)
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
        self.show_history()

    def _set_result(self, node) -> None:
        self.result_node = node
        self.apply_button.setEnabled(node is not None)
        self.discard_button.setEnabled(node is not None)

    def apply_result(self) -> None:
        if self.live is not None:
            try:
                node = self.live.apply(api.insertion_point(self.document()))
            except Exception as exc:
                self.status.setText(f"Cannot apply: {as_brushlink_error(exc).message}")
                return
            self.status.setText(f"Applied: {node.name()}")
            self.show_history()
            return
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

    def apply_again(self, entry_id: str) -> None:
        try:
            node = api.apply_again(entry_id, self.document())
        except Exception as exc:
            self.status.setText(f"Cannot apply: {as_brushlink_error(exc).message}")
            return
        self.status.setText(f"Applied again: {node.name()}")

    # ------------------------------------------------------------------ live

    def start_live(self) -> None:
        document = self.document()
        if document is None:
            self.status.setText("Cannot start: there is no open document.")
            return
        where = self._where()
        self.live = LiveSession(
            document, self.options, lambda: api.connection(**where), self._live_state
        )
        try:
            self.live.start()
        except Exception as exc:
            self.live.stop()
            self.live = None
            self.status.setText(f"Cannot start: {as_brushlink_error(exc).message}")
            return
        self.generate_button.setText("Stop live")
        self.apply_button.setEnabled(True)

    def stop_live(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            live.stop()
        if not self._gone():
            self.generate_button.setText(ACTIONS[self.mode.currentText()])
            self.apply_button.setEnabled(False)

    def _live_state(self, text: str) -> None:
        if not self._gone():
            self.status.setText(text)
