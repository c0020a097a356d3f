"""Results -> layers: ``[brushlink] <prompt> (seed)`` paint layers at the request's offset.

Several candidates go into one group, best first and the only one visible; the artist picks
by toggling visibility, then applies or discards. Every change here either completes or is
rolled back, so a failure never leaves stray layers behind.

**One undo step per result.** In Krita 5.1 ``Node.addChildNode`` is one undo command; writing
pixels (``setPixelData``) and filling a group that is not in the document yet
(``setChildNodes``) are none. So a result is built entirely off the document — its pixels
written, a group's candidates put in it — and added with a single ``addChildNode``: one Ctrl+Z
takes it away, one Ctrl+Shift+Z brings it back. (The scripting API has no way to group two
commands, so the whole-image upscale is two steps: the canvas scale, then the layer.)
"""

from __future__ import annotations

from .core import errors, protocol
from .images import is_rgba8, to_bgra
from .selection import Box, Placement

PREFIX = "[brushlink]"
SRGB = "sRGB-elle-V2-srgbtrc.icc"


def layer_name(label: str, seed: int | None, rank: int | None = None) -> str:
    """``[brushlink] <label> (seed)``; engines without a seed get the candidate's rank."""
    if seed is not None:
        return f"{PREFIX} {label} ({seed})"
    return f"{PREFIX} {label}" if rank is None else f"{PREFIX} {label} (#{rank + 1})"


def paint_layer(document, name: str, box: Box, bgra: bytes):
    """A paint layer holding ``bgra`` at ``box``, not yet in the document."""
    node = document.createNode(name, "paintlayer")
    if not is_rgba8(document):
        # The result is 8-bit sRGB; a layer may have its own colour space in Krita.
        node.setColorSpace("RGBA", "U8", SRGB)
    node.setPixelData(bgra, box.x, box.y, box.width, box.height)
    return node


def result_pixels(placement: Placement, images: list[protocol.ResultImage]) -> list[bytes]:
    """Each result as B, G, R, A bytes of the layer's box (its alpha limits it to the
    selection); raw ``bgra8`` results of the right size are used as they came."""
    if not images:
        raise errors.EngineError("The server returned no image.")
    if any(image.data is None for image in images):
        raise errors.InvalidImage("The server's result is missing its image data.")
    box = placement.out
    return [to_bgra(image.data, box.width, box.height) for image in images]


def place_results(
    placement: Placement,
    label: str,
    images: list[protocol.ResultImage],
    above=None,
    pixels: list[bytes] | None = None,
):
    """Add the results to the document in one undo step and return the new layer (or group
    of candidates). An upscale of the whole canvas scales the canvas (and every layer) first."""
    document = placement.document
    pixels = pixels if pixels is not None else result_pixels(placement, images)
    box = placement.out
    if len(images) == 1:
        added = paint_layer(document, layer_name(label, images[0].seed), box, pixels[0])
    else:
        added = document.createGroupLayer(f"{PREFIX} {label}")
        children = []
        for rank, (image, bgra) in enumerate(zip(images, pixels, strict=True)):
            node = paint_layer(document, layer_name(label, image.seed, rank), box, bgra)
            node.setVisible(rank == 0)
            children.append(node)
        added.setChildNodes(list(reversed(children)))  # bottom first: the best on top
    if placement.whole and placement.scale != 1:
        ppi = int(document.resolution())
        document.scaleImage(box.width, box.height, ppi, ppi, "Bicubic")
        document.waitForDone()
    add_node(document, added, above)
    return added


def add_node(document, node, above=None) -> None:
    """Add a finished layer above ``above`` (or on top) as one undo step."""
    parent = above.parentNode() if above is not None else document.rootNode()
    try:
        parent.addChildNode(node, above)  # Krita composites the new layer's area itself
        document.waitForDone()
    except Exception:
        if node.parentNode() is not None:
            node.remove()
            document.refreshProjection()
        raise


def candidates(node) -> list:
    """The paint layers of a result: the layer itself, or a group's children, best first."""
    if node.type() == "grouplayer":
        return list(reversed(node.childNodes()))
    return [node]


def apply(node, merge: bool = False):
    """Keep one result: a candidate leaves its group (the others are discarded); with
    ``merge`` it is merged into the layer below. Returns the layer that remains."""
    parent = node.parentNode()
    if node.type() == "grouplayer":
        visible = [n for n in candidates(node) if n.visible()]
        if not visible:
            raise errors.InvalidField("No candidate of this group is visible.", field="layer")
        node, parent = visible[0], node
    if parent is not None and parent.type() == "grouplayer" and parent.name().startswith(PREFIX):
        group = parent
        keep = node.duplicate()
        keep.setName(node.name())
        keep.setVisible(True)
        group.parentNode().addChildNode(keep, group)
        group.remove()
        node = keep
    if merge:
        node = node.mergeDown()
    document = _document_of(node)
    if document is not None:
        document.refreshProjection()
    return node


def discard(node) -> None:
    """Remove a result layer or a whole group of candidates."""
    document = _document_of(node)
    node.remove()
    if document is not None:
        document.refreshProjection()


def _document_of(node):
    from krita import Krita

    wanted = node.uniqueId()

    def holds(parent) -> bool:
        return any(c.uniqueId() == wanted or holds(c) for c in parent.childNodes())

    for document in Krita.instance().documents():
        if holds(document.rootNode()):
            return document
    return None
