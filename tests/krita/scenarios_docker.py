"""Scenarios: the docker driven as an artist would, and settings kept in the .kra."""

import os

from krita import Krita, Selection
from krita_helpers import CONFIG, URL, names, open_photo, rect_selection, scenario, wait_until
from PyQt5 import sip


@scenario
def docker_round_trip():
    from brushlink_krita.docker import BrushlinkDocker
    from brushlink_krita.settings import Settings

    Settings(url=URL).save()
    doc = open_photo("coffee")
    rect_selection(doc, 200, 200, 64, 48)
    docker = BrushlinkDocker()
    docker.document_override = doc
    wait_until(lambda: docker.status.text() != "Connecting…")
    status_connected = docker.status.text()
    docker.mode.setCurrentText("inpaint")
    models = [docker.model.itemText(i) for i in range(docker.model.count())]
    docker.model.setCurrentText("fill")
    docker.prompt.setPlainText("patch the table")
    docker.generate_button.click()
    busy = not docker.generate_button.isEnabled()
    wait_until(lambda: docker.job is None)
    info = {
        "connected": status_connected,
        "models": models,
        "busy_while_running": busy,
        "status_done": docker.status.text(),
        "layers": names(doc),
    }
    docker.discard_button.click()
    info["after_discard"] = names(doc)
    # A mistake caught before sending: said in the status line, nothing starts.
    docker.exclude.setText("No such layer")
    docker.generate_button.click()
    info["status_bad_exclude"] = docker.status.text()
    info["started_anyway"] = docker.job is not None
    docker.exclude.setText("")
    # A stopped server: the message lands in the docker, nothing raises.
    docker.url.setText(CONFIG["down_url"])
    docker.generate_button.click()
    wait_until(lambda: docker.job is None)
    info["status_down"] = docker.status.text()
    info["layers_after_error"] = names(doc)
    # Reconnect to the live server again (a fresh connection, the models listed anew).
    docker.url.setText(URL)
    docker.reconnect_button.click()
    wait_until(lambda: docker.status.text() != "Connecting…")
    info["reconnected"] = docker.status.text()
    # The document remembers the last prompt; a fresh docker shows it.
    fresh = BrushlinkDocker()
    fresh.document_override = doc
    fresh.canvasChanged(None)
    info["restored_prompt"] = fresh.prompt.toPlainText()
    info["restored_mode"] = fresh.mode.currentText()
    info["restored_seed"] = None if fresh.random_seed.isChecked() else fresh.seed.value()
    # In Krita a docker belongs to the main window; these two have no parent: free them now.
    sip.delete(docker)
    sip.delete(fresh)
    return info


@scenario
def docker_generate_with_previews():
    from brushlink_krita.docker import BrushlinkDocker
    from brushlink_krita.settings import Settings

    Settings(url=URL).save()
    doc = open_photo("astronaut")
    doc.setSelection(Selection())
    docker = BrushlinkDocker()
    docker.document_override = doc
    wait_until(lambda: docker.status.text() != "Connecting…")
    seen = {"progress_max": 0}
    original_event = docker._event

    def spy(event):  # watch the bar as events arrive, then let the docker handle them
        original_event(event)
        seen["progress_max"] = max(seen["progress_max"], docker.progress.maximum())

    docker._event = spy
    docker.mode.setCurrentText("generate")
    docker.model.setCurrentText("builtin")
    docker.prompt.setPlainText("red brick wall texture")
    docker.random_seed.setChecked(False)
    docker.seed.setValue(3_000_000_000)  # above 2^31: the seed is 32-bit unsigned
    docker.generate_button.click()
    wait_until(lambda: docker.job is None, limit_s=600)
    pixmap = docker.preview.pixmap()
    info = {
        "status": docker.status.text(),
        "preview_shown": pixmap is not None and not pixmap.isNull(),
        "progress_max": seen["progress_max"],
        "layers": names(doc),
    }
    sip.delete(docker)
    return info


@scenario
def docker_modes():
    """Each mode shows its own fields (advanced ones folded away); control layers and LoRAs
    show where the server has some, and the document keeps its control layers."""
    from brushlink_krita.docker import MODES, BrushlinkDocker
    from brushlink_krita.settings import Settings, load_from_document

    Settings(url=CONFIG["sd_url"], token=CONFIG["sd_token"]).save()
    doc = Krita.instance().createDocument(128, 128, "modes", "RGBA", "U8", "", 72.0)
    sketch = doc.createNode("Sketch", "paintlayer")
    doc.rootNode().addChildNode(sketch, None)
    docker = BrushlinkDocker()
    docker.document_override = doc
    wait_until(lambda: docker.status.text() != "Connecting…")
    info = {"status": docker.status.text(), "modes": {}}
    docker.model.setCurrentText("tiny")
    for mode in MODES:
        docker.mode.setCurrentText(mode)
        if mode != "upscale":
            docker.model.setCurrentText("tiny")
        info["modes"][mode] = {
            "shown": sorted(docker.shown_fields()),
            "not_hidden": sorted(n for n, w in docker.fields.items() if not w.isHidden()),
            "button": docker.generate_button.text(),
            "kind": docker.options().kind,
        }
    docker.mode.setCurrentText("generate")
    docker.model.setCurrentText("tiny")
    row = docker.controls_panel.add()
    row.layer.setCurrentText("Sketch")
    row.type.setCurrentIndex(row.type.findData("scribble"))
    row.strength.setValue(0.7)
    docker.loras_panel.add()
    job = docker.options()
    info["options"] = {
        "controls": [c.__dict__ for c in job.controls],
        "loras": [[lora.name, lora.weight] for lora in job.request.loras],
    }
    saved = load_from_document(doc)
    info["saved_controls"] = [c.layer for c in saved.controls] if saved else None
    fresh = BrushlinkDocker()
    fresh.document_override = doc
    fresh.canvasChanged(None)
    info["restored_controls"] = [c.__dict__ for c in fresh.controls_panel.values()]
    docker.mode.setCurrentText("upscale")  # end to end: the server's weight-free upscaler
    docker.model.setCurrentText("lanczos-sharp")
    docker.scale.setCurrentText("×2")
    docker.generate_button.click()
    wait_until(lambda: docker.job is None, limit_s=300)
    info["docker_upscale"] = {
        "status": docker.status.text(),
        "canvas": [doc.width(), doc.height()],
        "layers": names(doc),
    }
    docker.scale.setCurrentText("×4")
    docker.refine.setChecked(True)
    info["upscale_options"] = docker.options().request.to_wire()["upscale"]
    sip.delete(docker)
    sip.delete(fresh)
    Settings(url=URL).save()
    return info


@scenario
def settings_travel_with_the_kra():
    import brushlink_krita
    from brushlink_krita.settings import load_from_document

    doc = open_photo("coffee")
    rect_selection(doc, 100, 100, 40, 40)
    brushlink_krita.inpaint("a saved prompt", doc, model="fill", url=URL)
    path = os.path.join(CONFIG["workdir"], "saved.kra")
    doc.setBatchmode(True)
    doc.saveAs(path)
    doc.waitForDone()
    doc.close()
    again = Krita.instance().openDocument(path)
    saved = load_from_document(again)
    return {
        "prompt": saved.request.prompt if saved else None,
        "model": saved.request.model if saved else None,
        "layers": names(again),
    }
