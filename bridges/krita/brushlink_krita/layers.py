"""Results -> layers: ``[brushlink] <prompt> (seed)`` paint layers at the request's offset.

Several candidates go into one group, best first and the only one visible; the artist picks
by toggling visibility, then applies or discards. Every change here either completes or is
rolled back, so a failure never leaves stray layers behind.
"""

from __future__ import annotations

from .core import errors, protocol
from .images import is_rgba8, png_to_bgra
from .selection import Placement

PREFIX = "[brushlink]"
SRGB = "sRGB-elle-V2-srgbtrc.icc"


def layer_name(label: str, seed: int | None, rank: int | None = None) -> str:
    """``[brushlink] <label> (seed)``; engines without a seed get the candidate's rank."""
    if seed is not None:
        return f"{PREFIX} {label} ({seed})"
    return f"{PREFIX} {label}" if rank is None else f"{PREFIX} {label} (#{rank + 1})"


def _paint_layer(document, name: str, placement: Placement, png: bytes):
    box = placement.box
    bgra = png_to_bgra(png, box.width, box.height)  # its alpha limits it to the selection
    node = document.createNode(name, "paintlayer")
    if not is_rgba8(document):
        # The result is 8-bit sRGB; a layer may have its own colour space in Krita.
        node.setColorSpace("RGBA", "U8", SRGB)
    node.setPixelData(bgra, box.x, box.y, box.width, box.height)
    return node


def place_results(placement: Placement, label: str, images: list[protocol.ResultImage], above=None):
    """Add the results to the document and return the new layer (or group of candidates)."""
    document = placement.document
    if not images:
        raise errors.EngineError("The server returned no image.")
    if any(image.data is None for image in images):
        raise errors.InvalidImage("The server's result is missing its image data.")
    root = document.rootNode()
    parent = above.parentNode() if above is not None else root
    added = None
    try:
        if len(images) == 1:
            added = _paint_layer(
                document, layer_name(label, images[0].seed), placement, images[0].data
            )
            parent.addChildNode(added, above)
        else:
            added = document.createGroupLayer(f"{PREFIX} {label}")
            parent.addChildNode(added, above)
            # addChildNode(child, None) puts the child on top: add the worst first.
            for rank, image in reversed(list(enumerate(images))):
                node = _paint_layer(
                    document, layer_name(label, image.seed, rank), placement, image.data
                )
                node.setVisible(rank == 0)
                added.addChildNode(node, None)
        document.refreshProjection()
        document.waitForDone()
    except Exception:
        if added is not None and added.parentNode() is not None:
            added.remove()
            document.refreshProjection()
        raise
    return added


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
