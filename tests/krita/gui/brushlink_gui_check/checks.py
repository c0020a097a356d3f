"""Checks the window test runs that need a view: a vector layer (its shapes render only in a
document shown in Krita's window) as a control layer."""

SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt"
 viewBox="0 0 {w} {h}">
<path d="M 110 90 L 200 160 M 120 170 L 210 95" stroke="#000000" stroke-width="5" fill="none"/>
<circle cx="160" cy="128" r="30" stroke="#000000" stroke-width="4" fill="none"/>
</svg>"""


def stroke(node, x, y, size=40):
    """What a brush stroke does to a layer's pixels."""
    node.setPixelData(bytes([30, 60, 220, 255]) * size * size, x, y, size, size)


def over_white(bgra):
    out = bytearray(len(bgra))
    for i in range(0, len(bgra), 4):
        a = bgra[i + 3]
        for c in range(3):
            out[i + c] = round((bgra[i + c] * a + 255 * (255 - a)) / 255)
        out[i + 3] = 255
    return bytes(out)


def add_vector_layer(doc):
    """A vector layer of black lines; Krita renders its shapes a moment later."""
    layer = doc.createVectorLayer("Line art")
    doc.rootNode().addChildNode(layer, None)
    layer.addShapesFromSvg(SVG.format(w=doc.width(), h=doc.height()))
    return layer


def control_from_vector_layer(doc):
    """A vector line-art layer as a control: the job's control picture is the layer's pixels
    in the job's box, on white."""
    from brushlink_krita.options import KritaJob
    from brushlink_krita.selection import build_job
    from krita import Selection

    layer = doc.nodeByName("Line art")
    sel = Selection()
    sel.select(100, 80, 128, 96, 255)
    doc.setSelection(sel)
    control = {"layer": "Line art", "model": "tiny-lineart", "preprocessor": "lineart"}
    job, placement = build_job(doc, KritaJob.build("generate", "a cat", controls=[control]))
    box = placement.box
    own = bytes(layer.projectionPixelData(box.x, box.y, box.width, box.height))
    (picture,) = job.controls
    expected = over_white(own)
    diff = max(abs(a - b) for a, b in zip(picture.data, expected, strict=True))
    return {
        "type": layer.type(),
        "box": [box.x, box.y, box.width, box.height],
        "size": [picture.width, picture.height, picture.layout],
        "dark_pixels": sum(1 for v in picture.data[0::4] if v < 128),
        "max_diff": diff,
    }
