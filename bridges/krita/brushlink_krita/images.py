"""Pixels between Krita and PNG.

Krita hands out 8-bit RGBA as B, G, R, A bytes, which is exactly ``QImage.Format_ARGB32`` on
little-endian machines, so Qt's C++ PNG codec does the work (a pure-Python PNG decoder would
take seconds per megapixel inside Krita). Other colour spaces are read through
``Document.projection()``, which Krita converts to 8-bit sRGB for us.
"""

from __future__ import annotations

from PyQt5.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PyQt5.QtGui import QImage

from .core import errors, regions

RGBA8 = ("RGBA", "U8")


def is_rgba8(owner) -> bool:
    """True when a document or node stores 8-bit RGBA (bytes are B, G, R, A)."""
    return (owner.colorModel(), owner.colorDepth()) == RGBA8


def _save_png(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    if not image.save(buffer, "PNG", 100):  # quality 100: fastest zlib level, still lossless
        raise errors.InvalidImage("Qt could not encode the image as PNG.")
    buffer.close()
    return bytes(data)


def bgra_to_png(bgra: bytes, width: int, height: int) -> bytes:
    image = QImage(bgra, width, height, 4 * width, QImage.Format_ARGB32)
    return _save_png(image)


def gray_to_png(gray: bytes, width: int, height: int) -> bytes:
    image = QImage(gray, width, height, width, QImage.Format_Grayscale8)
    return _save_png(image)


def png_to_bgra(png: bytes, width: int, height: int) -> bytes:
    """Decode a PNG to B, G, R, A bytes of ``width`` x ``height`` (scaled if it differs)."""
    image = QImage.fromData(png, "PNG")
    if image.isNull():
        raise errors.InvalidImage("The server sent an image Qt cannot decode.")
    if (image.width(), image.height()) != (width, height):
        image = image.scaled(width, height, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    return _bits(image.convertToFormat(QImage.Format_ARGB32), 4 * width)


def read_visible(document, box: regions.Box, exclude: list[str] | tuple[str, ...] = ()) -> bytes:
    """The image as the artist sees it inside ``box`` (B, G, R, A), some layers hidden."""
    hidden = []
    for name in exclude:
        node = document.nodeByName(name)
        if node is None:
            raise errors.InvalidField(
                f"There is no layer named `{name}` to exclude.", field="exclude"
            )
        if node.visible():
            node.setVisible(False)
            hidden.append(node)
    try:
        # Scripts may have just changed pixels: composite before reading what is visible.
        document.refreshProjection()
        document.waitForDone()
        if is_rgba8(document):
            return bytes(document.pixelData(box.x, box.y, box.width, box.height))
        image = document.projection(box.x, box.y, box.width, box.height)
        return _bits(image.convertToFormat(QImage.Format_ARGB32), 4 * box.width)
    finally:
        for node in hidden:
            node.setVisible(True)
        if hidden:
            document.refreshProjection()
            document.waitForDone()


def layer_png(document, name: str) -> bytes:
    """A layer's own pixels (its bounds) as PNG, e.g. a style reference."""
    node = document.nodeByName(name)
    if node is None:
        raise errors.InvalidField(f"There is no layer named `{name}`.", field="reference")
    rect = node.bounds()
    if rect.isEmpty():
        raise errors.InvalidField(f"The layer `{name}` is empty.", field="reference")
    w, h = rect.width(), rect.height()
    if is_rgba8(node):
        return bgra_to_png(bytes(node.projectionPixelData(rect.x(), rect.y(), w, h)), w, h)
    image = node.thumbnail(w, h).convertToFormat(QImage.Format_ARGB32)
    return _save_png(image)


def _bits(image: QImage, row_bytes: int) -> bytes:
    """An image's pixels without the padding Qt adds at the end of each row."""
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    raw = bytes(bits)
    stride = image.bytesPerLine()
    if stride == row_bytes:
        return raw
    return b"".join(raw[y * stride : y * stride + row_bytes] for y in range(image.height()))
