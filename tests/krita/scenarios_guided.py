"""Scenarios: control layers, LoRAs, upscaling and raw pixels.

``control_layers_steer_the_picture`` runs against a second server (CONFIG "sd_url") holding a
tiny SD 1.x checkpoint, a tiny ControlNet that visibly steers it and a tiny LoRA.
"""

from krita import Krita, Selection
from krita_helpers import CONFIG, URL, names, open_photo, rect, rect_selection, scenario


def new_document(width, height, name="test"):
    doc = Krita.instance().createDocument(width, height, name, "RGBA", "U8", "", 72.0)
    doc.waitForDone()
    return doc


def lines_layer(doc, name, stripes):
    """A paint layer of black lines on a transparent ground, like a sketch."""
    node = doc.createNode(name, "paintlayer")
    doc.rootNode().addChildNode(node, None)
    w, h = doc.width(), doc.height()
    data = bytearray(4 * w * h)
    for y in range(h):
        for x in range(w):
            if stripes(x, y):
                data[4 * (y * w + x) : 4 * (y * w + x) + 4] = b"\x00\x00\x00\xff"
    node.setPixelData(bytes(data), 0, 0, w, h)
    return node


def over_white(bgra):
    """Pixels laid on white, in plain Python (what the plugin does with Qt)."""
    out = bytearray(len(bgra))
    for i in range(0, len(bgra), 4):
        a = bgra[i + 3]
        for c in range(3):
            out[i + c] = round((bgra[i + c] * a + 255 * (255 - a)) / 255)
        out[i + 3] = 255
    return bytes(out)


def max_diff(a, b):
    return (
        max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0) if len(a) == len(b) else 999
    )


@scenario
def control_layer_job():
    """The Job the plugin builds: each control layer's picture, cropped like the image."""
    from brushlink_krita.core import frames
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    doc = open_photo("coffee")
    # a sketch: black lines on a transparent paint layer, hidden (a control is read on its
    # own); the photo itself as the second control (a vector layer is checked with Krita's
    # window, tests/krita/gui: headless Krita cannot add shapes)
    lines_layer(doc, "Sketch", lambda x, y: (x + 2 * y) % 24 < 3 and 100 <= x < 260)
    doc.nodeByName("Sketch").setVisible(False)
    doc.waitForDone()
    rect_selection(doc, 101, 83, 118, 90)
    controls = [
        {"layer": "Sketch", "model": "tiny-lineart", "preprocessor": "lineart", "strength": 0.8},
        {"layer": "Background", "model": "tiny-lineart", "preprocessor": "depth", "end": 0.5},
    ]
    info = {}
    for kind in ("style", "generate", "inpaint"):
        job, placement = build_job(doc, KritaJob.build(kind, "a cat", controls=controls))
        box = placement.box
        pictures = job.controls
        sketch_px = bytes(doc.nodeByName("Sketch").projectionPixelData(*_box(box)))
        depth_px = bytes(doc.nodeByName("Background").projectionPixelData(*_box(box)))
        info[kind] = {
            "box": _box(box),
            "image_size": None if job.image is None else [job.image.width, job.image.height],
            "request_size": [job.request.width, job.request.height],
            "controls": [
                {k: getattr(c, k) for k in ("model", "image", "preprocessor", "strength", "end")}
                for c in job.request.controls
            ],
            "slots": [[slot, index] for slot, index, _ in job.slots()],
            "kinds": [type(p).__name__ for p in pictures],
            "layouts": [getattr(p, "layout", None) for p in pictures],
            "sizes": [[p.width, p.height] for p in pictures if isinstance(p, frames.Pixels)],
            "sketch_vs_layer_on_white": max_diff(pictures[0].data, over_white(sketch_px)),
            "depth_vs_layer": max_diff(pictures[1].data, depth_px),
            "sketch_dark_pixels": sum(1 for v in pictures[0].data[0::4] if v < 128),
        }
    return info


def _box(box):
    return [box.x, box.y, box.width, box.height]


@scenario
def control_layers_steer_the_picture():
    """A real job with the tiny ControlNet: the picture follows the control layer."""
    import brushlink_krita

    where = {"url": CONFIG["sd_url"], "token": CONFIG["sd_token"], "timeout": 300}
    doc = new_document(128, 128, "guided")
    lines_layer(doc, "Sketch A", lambda x, y: x % 32 < 6)
    lines_layer(doc, "Sketch B", lambda x, y: (x // 16 + y // 16) % 2 == 0)
    for name in ("Sketch A", "Sketch B"):
        doc.nodeByName(name).setVisible(False)
    doc.setSelection(Selection())
    base = {"model": "tiny", "seed": 11, "steps": 3, "use_selection": False}

    def draw(**extra):
        layer = brushlink_krita.generate("a house", doc, **base, **extra, **where)
        data = bytes(layer.pixelData(0, 0, 128, 128))
        brushlink_krita.discard(layer)
        return data

    def control(name, strength=1.0):
        return [{"layer": name, "model": "tiny-lineart", "preprocessor": "lineart",
                 "strength": strength}]  # fmt: skip

    plain = draw()
    with_a = draw(controls=control("Sketch A"))
    with_b = draw(controls=control("Sketch B"))
    off = draw(controls=control("Sketch A", 0.0))
    lora = draw(loras=[{"name": "tiny-lora", "weight": 1.0}])
    return {
        "addons": sorted(
            (a.name, a.type, a.family)
            for a in brushlink_krita.connection(where["url"], where["token"]).welcome().addons
        ),
        "a_differs_from_plain": max_diff(with_a, plain),
        "b_differs_from_a": max_diff(with_b, with_a),
        "strength_0_vs_plain": max_diff(off, plain),
        "lora_differs_from_plain": max_diff(lora, plain),
        "layers_left": names(doc),
    }


@scenario
def upscale_request_and_placement():
    """The upscale request the plugin builds, its placement (a fake 2x result laid into the
    document), and a real upscale when the server has a model for it."""
    import brushlink_krita
    from brushlink_krita import layers
    from brushlink_krita.core import frames, protocol
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    doc = open_photo("coffee")
    w, h = doc.width(), doc.height()
    doc.setSelection(Selection())
    settings = {"upscale": {"scale": 2, "refine": "tiny", "strength": 0.25}}
    whole, whole_at = build_job(doc, KritaJob.build("upscale", **settings))
    rect_selection(doc, 40, 30, 64, 48)
    part, part_at = build_job(doc, KritaJob.build("upscale", upscale={"scale": 4}))
    info = {
        "whole_wire": whole.request.to_wire(),
        "whole_image": [type(whole.image).__name__, whole.image.width, whole.image.height],
        "whole_out": _box(whole_at.out),
        "part_wire_upscale": part.request.to_wire()["upscale"],
        "part_image": [part.image.width, part.image.height],
        "part_out": _box(part_at.out),
        "label": KritaJob.build("upscale", upscale={"scale": 4}).label(),
    }
    # The selection's upscale: a new layer at the selection, the canvas as it was.
    big = frames.Pixels(256, 192, bytes([0, 128, 255, 255]) * 256 * 192, "bgra8")
    result = [protocol.ResultImage(index=0, width=256, height=192, data=big)]
    node = layers.place_results(part_at, "upscale ×4", result)
    info["part_layer"] = {"bounds": rect(node), "canvas": [doc.width(), doc.height()]}
    # The whole image: the canvas (and its layers) scaled, the upscaled layer over all of it.
    big = frames.Pixels(2 * w, 2 * h, bytes([255, 0, 0, 255]) * 4 * w * h, "bgra8")
    result = [protocol.ResultImage(index=0, width=2 * w, height=2 * h, data=big)]
    node = layers.place_results(whole_at, "upscale ×2", result)
    background = doc.topLevelNodes()[0]
    info["whole_layer"] = {
        "bounds": rect(node),
        "canvas": [doc.width(), doc.height()],
        "background_bounds": rect(background),
        "names": names(doc),
    }
    # Real upscales: the weight-free default on the plain server, the whole image and a
    # selection; a tiny ESRGAN and a refine pass with the tiny checkpoint on the other.
    info["server_upscalers"] = [m.name for m in brushlink_krita.models(url=URL)
                                if "upscale" in m.kinds]  # fmt: skip
    doc = open_photo("astronaut")
    doc.setSelection(Selection())
    layer = brushlink_krita.upscale(doc, scale=2, url=URL, timeout=300)
    info["real_whole"] = {"name": layer.name(), "bounds": rect(layer),
                          "canvas": [doc.width(), doc.height()]}  # fmt: skip
    rect_selection(doc, 100, 60, 50, 40)
    layer = brushlink_krita.upscale(doc, scale=4, url=URL, timeout=300)
    info["real_part"] = {"bounds": rect(layer), "canvas": [doc.width(), doc.height()]}
    doc = new_document(64, 64, "small")
    lines_layer(doc, "Paint", lambda x, y: (x // 8 + y // 8) % 2 == 0)
    doc.setSelection(Selection())
    where = {"url": CONFIG["sd_url"], "token": CONFIG["sd_token"], "timeout": 300}
    layer = brushlink_krita.upscale(
        doc, scale=4, model="tiny-x4", refine="tiny", strength=0.3, prompt="tiles", **where
    )
    info["refined"] = {"bounds": rect(layer), "canvas": [doc.width(), doc.height()]}
    return info


@scenario
def raw_pixels_both_ways():
    """On a loopback link the canvas goes out and the result comes back as raw B, G, R, A
    pixels: an identity job gives back exactly the canvas."""
    import brushlink_krita
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job

    doc = open_photo("astronaut")
    rect_selection(doc, 64, 64, 128, 96)
    job = KritaJob.build("style", model="filters", style="detail", strength=0.0)
    sent, _ = build_job(doc, job)
    result = brushlink_krita.connection(URL).run(sent, timeout=120)
    data = result.images[0].data
    layer = brushlink_krita.style(
        document=doc,
        model="filters",
        style="detail",
        strength=0.0,
        use_selection=False,
        url=URL,
        timeout=120,
    )
    w, h = doc.width(), doc.height()
    before = bytes(doc.nodeByName("Background").pixelData(0, 0, w, h))
    after = bytes(layer.pixelData(0, 0, w, h))
    return {
        "sent_image": [type(sent.image).__name__, sent.image.layout],
        "sent_mask": [type(sent.mask).__name__, sent.mask.layout],
        "result_data": [type(data).__name__, getattr(data, "layout", None)],
        "encoding": brushlink_krita.connection(URL).welcome().encoding,
        "layer_equals_canvas": max_diff(after, before),
        "layer_name": layer.name(),
    }
