"""A menu action (Tools > Scripts > brushlink: repeat last job) that runs the document's last
prompt and options again, without the docker."""

from __future__ import annotations

from krita import Extension, Krita
from PyQt5.QtWidgets import QMessageBox

from . import api
from .settings import load_from_document


class BrushlinkExtension(Extension):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self._job = None

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:  # noqa: N802 - Krita's API name
        action = window.createAction(
            "brushlink_repeat", "brushlink: repeat last job", "tools/scripts"
        )
        action.triggered.connect(self.repeat)

    def repeat(self) -> None:
        document = Krita.instance().activeDocument()
        job = load_from_document(document) if document is not None else None
        if job is None:
            self._tell("This document has no brushlink job to repeat yet.")
            return
        if self._job is not None and not self._job.finished:
            return
        try:
            self._job = api.start(job, document, on_done=self._done)
        except Exception as exc:
            self._tell(str(exc))

    def _done(self, node, error) -> None:
        if error is not None:
            self._tell(error.message)

    def _tell(self, message: str) -> None:
        window = Krita.instance().activeWindow()
        QMessageBox.information(window.qwindow() if window else None, "brushlink", message)
