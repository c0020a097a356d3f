"""Document + selection -> the request sent to the server, and where its result goes.

With a selection, the request covers the selection's bounding box, grown by the mask's grow
and feather, plus a context margin (a fraction of the diagonal) for inpainting, clamped to the
canvas and snapped to multiples of 8. The selection is read as 8-bit coverage, so soft and
feathered selections stay soft. Without a selection: the whole canvas (or, for generate, the
requested size at the top-left corner).
"""

from __future__ import annotations

from dataclasses import dataclass

from krita import Selection

from .core import errors, regions, request
from .images import bgra_to_png, gray_to_png, layer_png, read_visible, resize_gray
from .options import JobOptions

Box = regions.Box
SNAP = 8
DEFAULT_MARGIN = 0.1  # inpainting context: a tenth of the diagonal on every side


@dataclass
class Placement:
    """Where the result lands: ``box`` in document pixels and, optionally, the 8-bit alpha
    (``box``-sized) that limits it to the selection."""

    document: object
    box: Box
    alpha: bytes | None = None


def _selection_of(document, options: JobOptions):
    if not options.use_selection:
        return None
    sel = document.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    return sel


def build_request(document, options: JobOptions) -> tuple[request.JobRequest, Placement]:
    """Read the document and build the job; the document is not changed."""
    if document is None:
        raise errors.InvalidField("There is no open document to work on.", field="document")
    options.check()
    canvas = Box(0, 0, document.width(), document.height())
    sel = _selection_of(document, options)
    mode = options.mode
    grow = feather = 0
    if sel is not None:
        region = Box(sel.x(), sel.y(), sel.width(), sel.height()).clamp(canvas)
        if region.is_empty:
            raise errors.InvalidField("The selection lies outside the canvas.", field="selection")
        diagonal = region.diagonal
        if mode == "inpaint":
            grow = options.grow if options.grow is not None else max(1, round(0.01 * diagonal))
            feather = (
                options.feather if options.feather is not None else max(1, round(0.02 * diagonal))
            )
        default_margin = DEFAULT_MARGIN if mode == "inpaint" else 0.0
        margin = options.margin if options.margin is not None else default_margin
        box = regions.context_box(region, canvas, grow=grow + feather, margin=margin, multiple=SNAP)
    elif mode == "inpaint":
        raise errors.InvalidField(
            "Inpainting needs a selection: select the region to regenerate first.",
            field="selection",
        )
    elif mode == "generate" and (options.width or options.height):
        box = Box(0, 0, options.width or canvas.width, options.height or canvas.height)
    else:
        box = canvas if options.margin is None else regions.snap(canvas, SNAP, canvas)

    spec = options.spec(box.width, box.height)
    job = request.JobRequest(spec=spec)
    needs_image = mode in ("inpaint", "style") or (
        options.strength is not None and options.strength < 1.0
    )
    if needs_image:
        # The reference layer is a source of style, not part of the picture.
        hidden = [*options.exclude, *([options.reference] if options.reference else [])]
        job.image = bgra_to_png(read_visible(document, box, hidden), box.width, box.height)
    if options.reference:
        job.reference = layer_png(document, options.reference)

    alpha = None
    if sel is not None:
        if mode == "inpaint":
            job.mask = gray_to_png(_grown_mask(sel, box, grow, feather), box.width, box.height)
        if mode in ("inpaint", "style"):
            # The layer is limited to the artist's own (soft) selection, not the grown mask,
            # so nothing outside what they selected changes.
            alpha = bytes(sel.pixelData(*_xywh(box)))
    return job, Placement(document, box, alpha)


FEATHER_WORK = 8  # feathering wider than this runs on a smaller copy of the mask


def _grown_mask(sel, box: Box, grow: int, feather: int) -> bytes:
    """The selection inside ``box``, grown and feathered, as 8-bit coverage.

    A wide feather is a wide blur: Krita takes seconds for one on a large selection, so it
    runs at 1/scale of the size (scale = feather / 8) and the soft result is scaled back up,
    which a blur survives without visible change. ``box`` holds every selected pixel plus
    grow + feather, so nothing outside it takes part.
    """
    scale = max(1, feather // FEATHER_WORK)
    if scale == 1:
        mask = sel.duplicate()
        if grow:
            mask.grow(grow, grow)
        if feather:
            mask.feather(feather)
        return bytes(mask.pixelData(*_xywh(box)))
    small_w, small_h = max(1, box.width // scale), max(1, box.height // scale)
    coverage = bytes(sel.pixelData(*_xywh(box)))
    small = Selection()
    small.setPixelData(
        resize_gray(coverage, box.width, box.height, small_w, small_h), 0, 0, small_w, small_h
    )
    if grow // scale:
        small.grow(grow // scale, grow // scale)
    small.feather(max(1, feather // scale))
    soft = bytes(small.pixelData(0, 0, small_w, small_h))
    return resize_gray(soft, small_w, small_h, box.width, box.height)


def _xywh(box: Box) -> tuple[int, int, int, int]:
    return box.x, box.y, box.width, box.height
