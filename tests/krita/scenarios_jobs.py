"""Scenarios: the blocking API's jobs (inpaint, style, candidates, cancel, errors)."""

import socket
import sys

from krita import Selection
from krita_helpers import (
    CONFIG,
    EXACT,
    URL,
    compare,
    error_info,
    install_bundle,
    layer_alpha,
    mean_bgr,
    names,
    open_photo,
    pixels,
    rect,
    rect_selection,
    scenario,
    soft_ellipse,
    wait_until,
)


@scenario
def install():
    imported, pykrita = install_bundle()
    import brushlink_krita
    import websockets

    return {
        "imported": imported,
        "plugin_file": brushlink_krita.__file__,
        "pykrita": pykrita,
        "websockets_file": websockets.__file__,
        "core_module": brushlink_krita.core.host.__name__,
        "installed_brushlink_loaded": "brushlink" in sys.modules,
        "models": [m.name for m in brushlink_krita.models(url=URL)],
        # a loopback link: results come as Krita's own B, G, R, A bytes
        "encoding": brushlink_krita.connection(URL).welcome().encoding,
        "welcome_styles": {m.name: m.styles for m in brushlink_krita.models(url=URL)},
    }


@scenario
def rect_inpaint():
    import brushlink_krita

    doc = open_photo("coffee")
    # Something to remove: a magenta patch on its own layer, inside the selection.
    blemish = doc.createNode("Blemish", "paintlayer")
    doc.rootNode().addChildNode(blemish, None)
    blemish.setPixelData(bytes([255, 0, 255, 255]) * 60 * 30, 330, 125, 60, 30)
    mask = rect_selection(doc, 300, 100, 120, 80)
    before = pixels(doc)
    layer = brushlink_krita.inpaint("", doc, model="fill", inpaint=EXACT, url=URL, timeout=300)
    after = pixels(doc)
    w = doc.width()
    hole = mean_bgr(after, w, (300, 100, 120, 80), lambda x, y: True)
    ring = mean_bgr(
        before,
        w,
        (280, 80, 160, 120),
        lambda x, y: not (300 <= x < 420 and 100 <= y < 180),
    )
    original = mean_bgr(before, w, (300, 100, 120, 80), lambda x, y: True)
    alpha = layer_alpha(layer, (300, 100, 120, 80))
    magenta = sum(
        1
        for y in range(100, 180)
        for x in range(300, 420)
        if after[4 * (y * w + x) + 1] < 80
        and after[4 * (y * w + x)] > 180
        and after[4 * (y * w + x) + 2] > 180
    )
    return {
        "name": layer.name(),
        "type": layer.type(),
        "bounds": rect(layer),
        "layers": names(doc),
        "diff": compare(before, after, mask),
        "hole_mean": hole,
        "ring_mean": ring,
        "original_mean": original,
        "alpha_min": min(alpha),
        "magenta_left": magenta,
        "saved_prompt_kind": brushlink_krita.settings.load_from_document(doc).kind,
    }


@scenario
def soft_ellipse_inpaint():
    import brushlink_krita

    doc = open_photo("astronaut")
    mask = soft_ellipse(doc, 380, 150, 60, 40, 10)
    before = pixels(doc)
    # the server's default grow and feather: the layer reaches a few pixels past the selection
    layer = brushlink_krita.inpaint("", doc, model="fill", url=URL, timeout=300)
    after = pixels(doc)
    box = rect(layer)
    alpha = bytes(layer.pixelData(0, 0, doc.width(), doc.height()))[3::4]
    soft_alpha = [a for a, m in zip(alpha, mask, strict=True) if 0 < a < 255]
    return {
        "name": layer.name(),
        "bounds": box,
        "diff": compare(before, after, mask),
        "alpha_below_mask": sum(a + 1 < m for a, m in zip(alpha, mask, strict=True)),
        "selection_bounds": [
            doc.selection().x(),
            doc.selection().y(),
            doc.selection().width(),
            doc.selection().height(),
        ],  # fmt: skip
        "soft_alpha_levels": len(set(soft_alpha)),
        "layers": names(doc),
    }


@scenario
def sixteen_bit_document():
    import brushlink_krita

    doc = open_photo("coffee")
    doc.setColorSpace("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc")
    doc.waitForDone()
    rect_selection(doc, 64, 64, 96, 64)
    before = pixels(doc)  # 8 bytes a pixel
    layer = brushlink_krita.inpaint("", doc, model="fill", inpaint=EXACT, url=URL, timeout=300)
    after = pixels(doc)
    w = doc.width()
    outside_changed = sum(
        before[8 * i : 8 * i + 8] != after[8 * i : 8 * i + 8]
        for i in range(len(before) // 8)
        if not (64 <= i % w < 160 and 64 <= i // w < 128)
    )
    inside_changed = sum(
        before[8 * i : 8 * i + 8] != after[8 * i : 8 * i + 8]
        for i in range(len(before) // 8)
        if 64 <= i % w < 160 and 64 <= i // w < 128
    )
    return {
        "doc_depth": doc.colorDepth(),
        "layer_space": [layer.colorModel(), layer.colorDepth()],
        "bounds": rect(layer),
        "outside_changed": outside_changed,
        "inside_changed": inside_changed,
    }


@scenario
def style_sketch_canvas():
    import brushlink_krita

    doc = open_photo("astronaut")
    doc.setSelection(Selection())  # nothing selected: the whole canvas
    layer = brushlink_krita.style(style="sketch", document=doc, url=URL, timeout=300)
    data = bytes(layer.pixelData(0, 0, doc.width(), doc.height()))
    spread = max(max(data[i : i + 3]) - min(data[i : i + 3]) for i in range(0, len(data), 4 * 97))
    return {
        "name": layer.name(),
        "bounds": rect(layer),
        "max_channel_spread": spread,
        "alpha_min": min(data[3::4]),
    }


@scenario
def generate_candidates_group():
    import brushlink_krita

    doc = open_photo("coffee")
    mask = rect_selection(doc, 40, 40, 200, 160)
    before = pixels(doc)
    group = brushlink_krita.generate(
        "red brick wall texture", doc, candidates=3, seed=7, url=URL, timeout=600
    )
    after = pixels(doc)
    children = list(reversed(group.childNodes()))
    best = bytes(children[0].pixelData(40, 40, 200, 160))
    info = {
        "type": group.type(),
        "name": group.name(),
        "children": [c.name() for c in children],
        "visible": [c.visible() for c in children],
        "child_bounds": [rect(c) for c in children],
        "best_mean_bgr": mean_bgr(best, 200, (0, 0, 200, 160), lambda x, y: True),
        "diff": compare(before, after, mask),
    }
    kept = brushlink_krita.apply(group)
    info["applied_name"] = kept.name()
    info["after_apply"] = names(doc)
    brushlink_krita.discard(kept)
    info["after_discard"] = names(doc)
    info["pixels_restored"] = pixels(doc) == before
    return info


@scenario
def style_from_a_reference_layer():
    import brushlink_krita

    doc = open_photo("coffee")
    palette = doc.createNode("Palette", "paintlayer")
    doc.rootNode().addChildNode(palette, None)
    ramp = b"".join(bytes([120 + y, 40 + y // 4, 20, 255]) * 128 for y in range(128))
    palette.setPixelData(ramp, 0, 0, 128, 128)  # shades of blue, top-left corner
    palette.setVisible(False)
    mask = rect_selection(doc, 64, 64, 256, 192)
    before = pixels(doc)
    layer = brushlink_krita.style(
        document=doc, model="filters", reference="Palette", url=URL, timeout=300
    )
    after = pixels(doc)
    w = doc.width()
    return {
        "name": layer.name(),
        "bounds": rect(layer),
        "diff": compare(before, after, mask),
        "before_mean_bgr": mean_bgr(before, w, (64, 64, 256, 192), lambda x, y: True),
        "after_mean_bgr": mean_bgr(after, w, (64, 64, 256, 192), lambda x, y: True),
    }


@scenario
def cancel_while_running():
    import brushlink_krita
    from brushlink_krita.core import protocol
    from brushlink_krita.options import KritaJob

    doc = open_photo("coffee")
    doc.setSelection(Selection())
    before_layers = names(doc)
    state = {"done": False, "steps_seen": []}
    job = {}

    def on_event(event):
        if isinstance(event, protocol.Progress) and event.step >= 1:
            state["steps_seen"].append([event.step, event.total])
            job["job"].cancel()  # as the docker's Cancel button does, mid-run

    def on_done(node, error):
        state.update(done=True, node=node, error=error)

    options = KritaJob.build("generate", "blue water", model="builtin", steps=100)
    job["job"] = brushlink_krita.start(options, doc, on_done=on_done, on_event=on_event, url=URL)
    wait_until(lambda: state["done"], limit_s=600)
    error = state.get("error")
    return {
        "error": error_info(error) if error else None,
        "node": state.get("node") is not None,
        "steps_seen": state["steps_seen"][:3],
        "layers_unchanged": names(doc) == before_layers,
    }


@scenario
def excluded_layers_are_not_sent():
    import brushlink_krita
    from brushlink_krita.images import to_bgra
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    doc = open_photo("coffee")
    overlay = doc.createNode("Overlay", "paintlayer")
    doc.rootNode().addChildNode(overlay, None)
    overlay.setPixelData(bytes([0, 0, 255, 255]) * 64 * 64, 0, 0, 64, 64)  # opaque red
    doc.setSelection(Selection())
    seen = {}
    for exclude in ([], ["Overlay"]):
        job, placement = build_job(doc, KritaJob.build("style", exclude=exclude))
        box = placement.box
        bgra = to_bgra(job.image, box.width, box.height)
        seen["with" if not exclude else "without"] = list(bgra[:4])
    return {
        "first_pixel": seen,
        "overlay_visible": overlay.visible(),
        "modules": brushlink_krita.__name__,
    }


@scenario
def errors_leave_the_document_alone():
    import brushlink_krita

    doc = open_photo("coffee")
    rect_selection(doc, 10, 10, 50, 50)
    before_layers, before = names(doc), pixels(doc)
    found = {}
    cases = {
        "server_down": {"url": CONFIG["down_url"]},
        "wrong_token": {"url": URL, "token": "not-the-token"},
        "unknown_model": {"url": URL, "model": "no-such-model"},
        "bad_option": {"url": URL, "colour": "blue"},
    }
    # A server that accepts connections and never answers: only the call's timeout ends it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    cases["silent_server"] = {
        "url": f"ws://127.0.0.1:{silent.getsockname()[1]}/v1",
        "model": "fill",
        "timeout": 1,
    }
    for case, kwargs in cases.items():
        kwargs.setdefault("timeout", 120)
        try:
            brushlink_krita.inpaint("", doc, **kwargs)
            found[case] = None
        except Exception as exc:
            found[case] = error_info(exc)
    silent.close()
    doc.setSelection(Selection())
    try:
        brushlink_krita.inpaint("", doc, url=URL, model="fill")
        found["no_selection"] = None
    except Exception as exc:
        found["no_selection"] = error_info(exc)
    return {
        "errors": found,
        "layers_unchanged": names(doc) == before_layers,
        "pixels_unchanged": pixels(doc) == before,
    }
