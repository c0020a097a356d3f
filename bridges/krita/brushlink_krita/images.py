"""Pixels between Krita, raw frames and PNG.

Krita hands out 8-bit RGBA as B, G, R, A bytes, which is exactly ``QImage.Format_ARGB32`` on
little-endian machines and the ``bgra8`` layout of a raw frame: on a loopback link the canvas
travels as it is (``Pixels``) and results come back the same way, so nothing is encoded. PNG
(remote links, thumbnails) goes through Qt's C++ codec (a pure-Python PNG decoder would take
seconds per megapixel inside Krita). Other colour spaces are read through
``Document.projection()``, which Krita converts to 8-bit sRGB for us.
"""

from __future__ import annotations

from PyQt5.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PyQt5.QtGui import QColor, QImage, QPainter

from .core import errors, frames, regions

RGBA8 = ("RGBA", "U8")
RGBA16 = ("RGBA", "U16")
Pixels = frames.Pixels


def is_rgba8(owner) -> bool:
    """True when a document or node stores 8-bit RGBA (bytes are B, G, R, A)."""
    return (owner.colorModel(), owner.colorDepth()) == RGBA8


def _save_png(image: QImage, quality: int = 100) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    if not image.save(buffer, "PNG", quality):  # 100: no compression, fastest; still lossless
        raise errors.InvalidImage("Qt could not encode the image as PNG.")
    buffer.close()
    return bytes(data)


def bgra_to_png(bgra: bytes, width: int, height: int) -> bytes:
    image = QImage(bgra, width, height, 4 * width, QImage.Format_ARGB32)
    return _save_png(image)


def gray_to_png(gray: bytes, width: int, height: int) -> bytes:
    image = QImage(gray, width, height, width, QImage.Format_Grayscale8)
    return _save_png(image)


def bgra_image(bgra: bytes, width: int, height: int) -> QImage:
    """A QImage over B, G, R, A bytes (it shares them: keep ``bgra`` alive while it is used)."""
    return QImage(bgra, width, height, 4 * width, QImage.Format_ARGB32)


def as_qimage(image: frames.Image) -> QImage:
    """A result or preview as a QImage (a copy, independent of the bytes it came from)."""
    if isinstance(image, Pixels):
        bgra = image if image.layout == "bgra8" else image.bgra()
        return bgra_image(bgra.data, bgra.width, bgra.height).copy()
    decoded = QImage.fromData(image, "PNG")
    if decoded.isNull():
        raise errors.InvalidImage("The server sent an image Qt cannot decode.")
    return decoded


def to_bgra(image: frames.Image, width: int, height: int) -> bytes:
    """A result (raw pixels or PNG) as B, G, R, A bytes of ``width`` x ``height``, scaled when
    its size differs. Raw ``bgra8`` pixels of the right size are used as they are."""
    exact = isinstance(image, Pixels) and (image.width, image.height) == (width, height)
    if exact and image.layout == "bgra8":
        return image.data
    qimage = as_qimage(image)
    if (qimage.width(), qimage.height()) != (width, height):
        qimage = qimage.scaled(width, height, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    return _bits(qimage.convertToFormat(QImage.Format_ARGB32), 4 * width)


def png_to_bgra(png: bytes, width: int, height: int) -> bytes:
    """Decode a PNG to B, G, R, A bytes of ``width`` x ``height`` (scaled if it differs)."""
    return to_bgra(png, width, height)


def thumbnail_png(bgra: bytes, width: int, height: int, side: int, quality: int = 60) -> bytes:
    """A small PNG of some pixels, at most ``side`` pixels on its longer side."""
    image = bgra_image(bgra, width, height)
    if max(width, height) > side:
        image = image.scaled(side, side, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    return _save_png(image, quality)


def over_white(bgra: bytes, width: int, height: int) -> bytes:
    """The pixels laid on white paper (opaque): what the artist sees of a layer alone."""
    paper = QImage(width, height, QImage.Format_ARGB32)
    paper.fill(QColor(255, 255, 255, 255))
    painter = QPainter(paper)
    painter.drawImage(0, 0, bgra_image(bgra, width, height))
    painter.end()
    return _bits(paper, 4 * width)


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


def layer_pixels(document, name: str, field: str = "reference") -> Pixels:
    """A layer's own pixels (its bounds), e.g. a style reference."""
    node = document.nodeByName(name)
    if node is None:
        raise errors.InvalidField(f"There is no layer named `{name}`.", field=field)
    rect = node.bounds()
    if rect.isEmpty():
        raise errors.InvalidField(f"The layer `{name}` is empty.", field=field)
    w, h = rect.width(), rect.height()
    if is_rgba8(node):
        return Pixels(w, h, bytes(node.projectionPixelData(rect.x(), rect.y(), w, h)), "bgra8")
    image = node.thumbnail(w, h).convertToFormat(QImage.Format_ARGB32)
    return Pixels(w, h, _bits(image, 4 * w), "bgra8")


def read_layer(document, name: str, box: regions.Box, field: str = "controls") -> bytes:
    """One layer alone inside ``box`` (B, G, R, A), visible or not: a control's picture.

    8-bit layers are read as they are; 16-bit RGBA layers keep each channel's high byte (their
    8-bit value); other colour spaces are refused."""
    node = document.nodeByName(name)
    if node is None:
        raise errors.InvalidField(f"There is no layer named `{name}`.", field=field)
    document.waitForDone()  # a vector layer renders its shapes in the background
    data = bytes(node.projectionPixelData(box.x, box.y, box.width, box.height))
    if is_rgba8(node):
        return data
    if (node.colorModel(), node.colorDepth()) == RGBA16:
        return data[1::2]  # little-endian 16-bit channels: the high byte is the 8-bit value
    raise errors.InvalidField(
        f"The layer `{name}` is {node.colorModel()} {node.colorDepth()}; a control layer must "
        "be 8- or 16-bit RGBA.",
        field=field,
    )


def _bits(image: QImage, row_bytes: int) -> bytes:
    """An image's pixels without the padding Qt adds at the end of each row."""
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    raw = bytes(bits)
    stride = image.bytesPerLine()
    if stride == row_bytes:
        return raw
    return b"".join(raw[y * stride : y * stride + row_bytes] for y in range(image.height()))
