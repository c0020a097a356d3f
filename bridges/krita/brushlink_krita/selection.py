"""Document + selection -> the job sent to the server, and where its result goes.

With a selection, the job covers the selection's bounding box plus what the server will add
around it: for inpainting, the grow and feather of the mask and the context margin
(``regions.context_box``, the function the server crops with, so the server finds in the image
all the context it would use); for the other kinds the box itself. The mask is the selection
as it is, read as 8-bit coverage so soft selections stay soft: the server grows and feathers
it, and answers with a layer whose alpha is the blend (``inpaint.output = "layer"``). Without
a selection: the whole canvas (or, for generate, the requested size at the top-left corner).

Pictures travel as raw ``bgra8`` pixels, Krita's own bytes (the client turns them into PNG for
a link that does not take raw frames). Each control layer's picture is cropped to the same box
as the image, so the server lays it exactly over the picture it guides.
"""

from __future__ import annotations

from dataclasses import dataclass

from .core import errors, regions, request
from .images import Pixels, layer_pixels, over_white, read_layer, read_visible
from .options import LINE_TYPES, KritaJob

Box = regions.Box
SNAP = 8


@dataclass
class Placement:
    """Where the result lands: ``box`` in document pixels. An upscale's result is ``scale``
    times the box; ``whole`` when it is the whole canvas (which then grows with it)."""

    document: object
    box: Box
    scale: int = 1
    whole: bool = False

    @property
    def out(self) -> Box:
        """The result layer's box."""
        s = self.scale
        if self.whole:
            return Box(0, 0, self.box.width * s, self.box.height * s)
        return Box(self.box.x, self.box.y, self.box.width * s, self.box.height * s)


def _selection_of(document, job: KritaJob):
    if not job.use_selection:
        return None
    sel = document.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    return sel


def build_job(document, job: KritaJob) -> tuple[request.Job, Placement]:
    """Read the document and build the job; the document is not changed."""
    if document is None:
        raise errors.InvalidField("There is no open document to work on.", field="document")
    job.check()
    req = request.Request.from_wire(job.request.to_wire())  # the caller's copy stays as it was
    canvas = Box(0, 0, document.width(), document.height())
    sel = _selection_of(document, job)
    kind = job.kind
    if sel is not None:
        region = Box(sel.x(), sel.y(), sel.width(), sel.height()).clamp(canvas)
        if region.is_empty:
            raise errors.InvalidField("The selection lies outside the canvas.", field="selection")
        if kind == "upscale":
            box = region  # exactly the selection: its upscale is a layer of its own
        elif kind == "inpaint":
            grow, feather = regions.default_edges(region, req.inpaint.grow, req.inpaint.feather)
            context = req.inpaint.context
            margin = regions.DEFAULT_CONTEXT if context is None else context
            box = regions.context_box(region, canvas, grow=grow, margin=margin, multiple=SNAP)
        else:
            box = regions.snap(region, SNAP, canvas)
    elif kind == "inpaint":
        raise errors.InvalidField(
            "Inpainting needs a selection: select the region to regenerate first.",
            field="selection",
        )
    elif kind == "generate" and (req.width or req.height):
        box = Box(0, 0, req.width or canvas.width, req.height or canvas.height)
    else:
        box = canvas

    out = request.Job(req)
    if kind == "upscale":
        req.width = req.height = None  # the result is `scale` times the picture
    else:
        req.width, req.height = box.width, box.height
    if kind in ("inpaint", "style", "upscale"):
        # The reference layer is a source of style, not part of the picture.
        hidden = [*job.exclude, *([job.reference] if job.reference else [])]
        out.image = Pixels(box.width, box.height, read_visible(document, box, hidden), "bgra8")
    if job.reference and kind != "upscale":
        out.reference = layer_pixels(document, job.reference)
    if sel is not None and kind in ("inpaint", "style"):
        # the artist's own (soft) selection: the server grows and feathers it and answers
        # with a layer whose alpha limits the change to it
        coverage = bytes(sel.pixelData(box.x, box.y, box.width, box.height))
        out.mask = Pixels(box.width, box.height, coverage, "gray8")
        req.inpaint.output = "layer"
    req.controls = []
    for index, control in enumerate(job.active_controls()):
        req.controls.append(control.control(index))
        out.controls.append(control_picture(document, control, box, index))
    if kind == "upscale":
        scale = req.upscale.scale
        return out, Placement(document, box, scale=scale, whole=sel is None)
    return out, Placement(document, box)


def control_picture(document, control, box: Box, index: int) -> Pixels:
    """A control layer alone, cropped to the job's box: lines on white paper for the line-like
    preprocessors (a sketch's transparent ground reads as the paper it is drawn on), as it is
    otherwise (transparent reads as black: no signal)."""
    bgra = read_layer(document, control.layer, box, field=f"controls[{index}].layer")
    if control.preprocessor in LINE_TYPES:
        bgra = over_white(bgra, box.width, box.height)
    return Pixels(box.width, box.height, bgra, "bgra8")
