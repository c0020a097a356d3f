"""A test plugin for real Krita with a window (under Xvfb): the user's flow, end to end.

Krita loads brushlink_krita the way it loads any enabled plugin; this plugin then opens a photo
in a view, selects a rectangle, fills in the brushlink docker (inpaint, model fill), presses
Generate, waits for the layer through Qt timers (the window stays live), undoes and redoes it
with Krita's own actions, checks a candidates group goes in one undo step, reads a vector
layer as a control, shows the docker in each mode (screenshots; which widgets are visible),
paints live with the built-in model, writes a JSON report to BRUSHLINK_KRITA_GUI_REPORT and
quits Krita through its own File > Quit action.
"""

import json
import os
import sys
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QAbstractItemModel, Qt, QTimer
from PyQt5.QtWidgets import QApplication

from .checks import add_vector_layer, control_from_vector_layer, stroke

REPORT_PATH = os.environ["BRUSHLINK_KRITA_GUI_REPORT"]
PHOTO = os.environ["BRUSHLINK_KRITA_GUI_PHOTO"]
SHOTS = os.environ["BRUSHLINK_KRITA_GUI_SHOTS"]


def undo_steps():
    """Rows of Krita's undo history (its Undo History docker's model)."""
    for widget in QApplication.instance().topLevelWidgets():
        for model in widget.findChildren(QAbstractItemModel):
            if model.metaObject().className() == "KisUndoModel":
                return model.rowCount()
    return None


def names(doc):
    return [n.name() for n in doc.topLevelNodes()]


def pixels(doc):
    doc.refreshProjection()
    doc.waitForDone()
    return bytes(doc.pixelData(0, 0, doc.width(), doc.height()))


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
        for doc in Krita.instance().documents():
            doc.setModified(False)  # File > Quit must not stop at a "save changes?" question
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
        self.window = app.activeWindow()
        self.doc = app.openDocument(PHOTO)
        self.window.addView(self.doc)
        sel = Selection()
        sel.select(300, 100, 120, 80, 255)
        self.doc.setSelection(sel)
        self.before = pixels(self.doc)
        dockers = [d for d in app.dockers() if d.objectName() == "brushlink_docker"]
        self.report["plugin_loaded"] = "brushlink_krita" in sys.modules
        self.report["docker_found"] = len(dockers)
        self.report["repeat_action"] = app.action("brushlink_repeat") is not None
        self.docker = dockers[0]
        self.report["docker_class"] = type(self.docker).__name__
        # the window tall enough, and only the layers docker beside brushlink's
        self.window.qwindow().resize(1500, 1150)
        for dock in app.dockers():
            if dock.objectName() not in ("brushlink_docker", "KisLayerBox"):
                dock.hide()
        self.docker.setFloating(True)  # on its own, at a size that shows every field
        self.docker.resize(380, 1100)
        self.docker.show()
        self.docker.raise_()
        self.wait(lambda: self.docker.status.text() != "Connecting…", self.generate)

    def wait(self, condition, then, limit=6000):
        self.ticks = 0

        def tick():
            self.ticks += 1
            if condition():
                self.guarded(then)
            elif self.ticks > limit:  # a guard against a hang, far beyond any real wait
                self.report["error"] = f"gave up waiting before {then.__name__}"
                self.finish()
            else:
                QTimer.singleShot(20, tick)

        QTimer.singleShot(20, tick)

    # ------------------------------------------------------------------ inpaint and undo

    def generate(self):
        self.report["status_connected"] = self.docker.status.text()
        self.docker.mode.setCurrentText("inpaint")
        self.docker.model.setCurrentText("fill")
        self.docker.prompt.setPlainText("")
        self.steps_before = undo_steps()
        self.docker.generate_button.click()
        self.report["busy"] = not self.docker.generate_button.isEnabled()
        self.wait(lambda: self.docker.job is None, self.check)

    def check(self):
        doc = self.doc
        after = pixels(doc)
        w = doc.width()
        outside = inside = 0
        for i in range(0, len(after) // 4):
            changed = after[4 * i : 4 * i + 4] != self.before[4 * i : 4 * i + 4]
            if 300 <= i % w < 420 and 100 <= i // w < 180:
                inside += changed
            elif not (296 <= i % w < 424 and 96 <= i // w < 184):  # beyond the 4 px grow
                outside += changed
        layer = doc.nodeByName("[brushlink] inpaint")
        bounds = layer.bounds() if layer is not None else None
        self.report.update(
            status_done=self.docker.status.text(),
            layers=names(doc),
            bounds=None
            if bounds is None
            else [bounds.x(), bounds.y(), bounds.width(), bounds.height()],
            outside_changed=outside,
            inside_changed=inside,
            undo_steps_added=undo_steps() - self.steps_before,
        )
        # One Ctrl+Z takes the whole result away; Ctrl+Shift+Z brings it back.
        Krita.instance().action("edit_undo").trigger()
        self.wait(lambda: "[brushlink] inpaint" not in names(doc), self.undone, limit=250)

    def undone(self):
        self.report["after_undo"] = names(self.doc)
        self.report["undo_restores_pixels"] = pixels(self.doc) == self.before
        Krita.instance().action("edit_redo").trigger()
        self.wait(lambda: "[brushlink] inpaint" in names(self.doc), self.redone, limit=250)

    def redone(self):
        self.report["after_redo"] = names(self.doc)
        self.docker.apply_button.click()
        self.report["after_apply"] = names(self.doc)
        import brushlink_krita

        job = brushlink_krita.KritaJob.build(
            "generate", "red brick wall texture", model="builtin", candidates=2, steps=3, seed=5
        )
        sel = Selection()
        sel.select(40, 40, 64, 64, 255)
        self.doc.setSelection(sel)
        self.group_before = names(self.doc)
        self.group_steps = undo_steps()
        self.group = {}
        brushlink_krita.start(job, self.doc, on_done=lambda node, error: self.group.update(
            node=node, error=error))  # fmt: skip
        self.wait(lambda: self.group, self.group_undo)

    def group_undo(self):
        node, error = self.group["node"], self.group["error"]
        self.report["group"] = {
            "error": None if error is None else error.message,
            "type": None if node is None else node.type(),
            "children": None if node is None else len(node.childNodes()),
            "undo_steps_added": undo_steps() - self.group_steps,
        }
        Krita.instance().action("edit_undo").trigger()
        self.wait(lambda: names(self.doc) == self.group_before, self.vector_layer, limit=250)

    # ------------------------------------------------------------------ controls and modes

    def vector_layer(self):
        self.report["group"]["after_one_undo"] = names(self.doc)
        add_vector_layer(self.doc)
        QTimer.singleShot(1000, lambda: self.guarded(self.vector_control))  # it renders

    def vector_control(self):
        self.doc.nodeByName("Line art").setVisible(False)  # a control works hidden
        self.doc.refreshProjection()
        self.report["vector_control"] = control_from_vector_layer(self.doc)
        self.modes = ["generate", "inpaint", "style", "upscale", "live"]
        self.report["modes"] = {}
        self.docker.advanced.set_open(True)
        # a control layer and a LoRA listed, as an artist would have them
        self.docker.mode.setCurrentText("generate")
        self.docker.model.setCurrentText("tiny")
        row = self.docker.controls_panel.add()
        row.layer.setCurrentText("Line art")
        row.type.setCurrentIndex(row.type.findData("lineart"))
        row.strength.setValue(0.8)
        self.docker.loras_panel.add()
        self.next_mode()

    def next_mode(self):
        mode = self.modes.pop(0)
        self.docker.mode.setCurrentText(mode)
        if mode != "upscale":
            self.docker.model.setCurrentText("tiny")
        QTimer.singleShot(300, lambda: self.guarded(lambda: self.shoot(mode)))

    def shoot(self, mode):
        docker = self.docker
        docker.grab().save(os.path.join(SHOTS, f"docker-{mode}.png"))
        docker.setFloating(False)
        layers = [d for d in Krita.instance().dockers() if d.objectName() == "KisLayerBox"]
        self.window.qwindow().resizeDocks([*layers, docker], [200, 900], Qt.Vertical)
        QTimer.singleShot(300, lambda: self.guarded(lambda: self.shoot_window(mode)))

    def shoot_window(self, mode):
        docker = self.docker
        self.window.qwindow().grab().save(os.path.join(SHOTS, f"window-{mode}.png"))
        self.report["modes"][mode] = {
            "visible": sorted(n for n, w in docker.fields.items() if w.isVisible()),
            "button": docker.generate_button.text(),
            "discard_visible": docker.discard_button.isVisible(),
            "history_visible": docker.history_panel.isVisible(),
        }
        docker.setFloating(True)
        if self.modes:
            self.next_mode()
        else:
            self.start_live()

    # ------------------------------------------------------------------ live painting

    def start_live(self):
        docker = self.docker
        docker.advanced.set_open(False)
        docker.model.setCurrentText("builtin")
        docker.prompt.setPlainText("red brick wall texture")
        self.doc.setSelection(Selection())
        self.live_layer = self.doc.nodeByName("Background")
        self.doc.setActiveNode(self.live_layer)  # the layer being painted on
        docker.generate_button.click()
        self.report["live"] = {"button": docker.generate_button.text()}
        self.wait(lambda: docker.live is not None and docker.live.stats["shown"] >= 1,
                  self.live_stroke)  # fmt: skip

    def live_stroke(self):
        self.report["live"]["active_layer"] = self.live_layer.name()
        stroke(self.live_layer, 100, 100)
        self.live_shown = self.docker.live.stats["shown"]
        self.wait(lambda: self.docker.live.stats["shown"] > self.live_shown, self.live_apply)

    def live_apply(self):
        live = self.docker.live
        self.report["live"].update(stats=dict(live.stats), latency_s=live.latency_s)
        self.docker.apply_button.click()
        self.report["live"]["status_applied"] = self.docker.status.text()
        self.docker.generate_button.click()  # Stop live
        self.report["live"]["after_stop"] = names(self.doc)
        self.report["live"]["history"] = self.docker.history_panel.list.count()
        self.finish()


Krita.instance().addExtension(GuiCheck(Krita.instance()))
