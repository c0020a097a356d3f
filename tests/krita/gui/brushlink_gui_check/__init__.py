"""A test plugin for real Krita with a window (under Xvfb): the user's flow, end to end.

Krita loads brushlink_krita the way it loads any enabled plugin; this plugin then opens a photo
in a view, selects a rectangle, fills in the brushlink docker (inpaint, model fill), presses
Generate, waits for the layer through Qt timers (the window stays live), writes a JSON report
to BRUSHLINK_KRITA_GUI_REPORT and quits Krita through its own File > Quit action.
"""

import json
import os
import sys
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QTimer

REPORT_PATH = os.environ["BRUSHLINK_KRITA_GUI_REPORT"]
PHOTO = os.environ["BRUSHLINK_KRITA_GUI_PHOTO"]


class GuiCheck(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.report = {}
        self.ticks = 0

    def setup(self):
        pass

    def createActions(self, window):
        QTimer.singleShot(500, self.start)

    def finish(self):
        with open(REPORT_PATH, "w") as f:
            json.dump(self.report, f, indent=1)
        Krita.instance().action("file_quit").trigger()

    def guarded(self, step):
        try:
            step()
        except Exception:
            self.report["error"] = traceback.format_exc()
            self.finish()

    def start(self):
        self.guarded(self._start)

    def _start(self):
        app = Krita.instance()
        window = app.activeWindow()
        self.doc = app.openDocument(PHOTO)
        window.addView(self.doc)
        sel = Selection()
        sel.select(300, 100, 120, 80, 255)
        self.doc.setSelection(sel)
        self.before = bytes(self.doc.pixelData(0, 0, self.doc.width(), self.doc.height()))
        dockers = [d for d in app.dockers() if d.objectName() == "brushlink_docker"]
        self.report["plugin_loaded"] = "brushlink_krita" in sys.modules
        self.report["docker_found"] = len(dockers)
        self.report["repeat_action"] = app.action("brushlink_repeat") is not None
        self.docker = dockers[0]
        self.report["docker_class"] = type(self.docker).__name__
        self.wait(lambda: self.docker.status.text() != "Connecting…", self.generate)

    def wait(self, condition, then):
        def tick():
            self.ticks += 1
            if condition():
                self.guarded(then)
            elif self.ticks > 6000:  # a guard against a hang, far beyond any real wait
                self.report["error"] = "gave up waiting"
                self.finish()
            else:
                QTimer.singleShot(20, tick)

        QTimer.singleShot(20, tick)

    def generate(self):
        self.report["status_connected"] = self.docker.status.text()
        self.docker.mode.setCurrentText("inpaint")
        self.docker.model.setCurrentText("fill")
        self.docker.generate_button.click()
        self.report["busy"] = not self.docker.generate_button.isEnabled()
        self.wait(lambda: self.docker.job is None, self.check)

    def check(self):
        doc = self.doc
        doc.refreshProjection()
        doc.waitForDone()
        after = bytes(doc.pixelData(0, 0, doc.width(), doc.height()))
        w = doc.width()
        outside = inside = 0
        for i in range(0, len(after) // 4):
            changed = after[4 * i : 4 * i + 4] != self.before[4 * i : 4 * i + 4]
            if 300 <= i % w < 420 and 100 <= i // w < 180:
                inside += changed
            elif not (296 <= i % w < 424 and 96 <= i // w < 184):  # beyond the 4 px grow
                outside += changed
        layer = doc.nodeByName("[brushlink] inpaint")
        self.report.update(
            status_done=self.docker.status.text(),
            layers=[n.name() for n in doc.topLevelNodes()],
            bounds=None
            if layer is None
            else [
                layer.bounds().x(),
                layer.bounds().y(),
                layer.bounds().width(),
                layer.bounds().height(),
            ],
            outside_changed=outside,
            inside_changed=inside,
        )
        self.docker.apply_button.click()
        self.report["after_apply"] = [n.name() for n in doc.topLevelNodes()]
        doc.setModified(False)  # File > Quit must not stop at a "save changes?" question
        self.finish()


Krita.instance().addExtension(GuiCheck(Krita.instance()))
