"""The pure-Python PNG codec that bridges use, checked against OpenCV's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from brushlink.plugin import png
from brushlink.plugin.errors import InvalidImage
from brushlink.server.images import decode_rgba, encode_rgba


def _cv2_png(image_rgba: np.ndarray, compression: int = 9) -> bytes:
    ok, data = cv2.imencode(
        ".png",
        cv2.cvtColor(image_rgba, cv2.COLOR_RGBA2BGRA),
        [cv2.IMWRITE_PNG_COMPRESSION, compression],
    )
    assert ok
    return data.tobytes()


def test_pure_encoder_is_read_by_opencv(astronaut: np.ndarray) -> None:
    crop = astronaut[100:164, 50:130].copy()
    data = png.encode_rgba(crop.shape[1], crop.shape[0], crop.tobytes())
    assert np.array_equal(decode_rgba(data, "image"), crop)


def test_pure_decoder_reads_opencv_files_with_every_row_filter(coffee: np.ndarray) -> None:
    # OpenCV picks row filters adaptively (sub, up, average, paeth) on a real photo.
    crop = coffee[:48, :96].copy()
    crop[..., 3] = np.arange(96, dtype=np.uint8)[None, :]
    width, height, pixels = png.decode_rgba(_cv2_png(crop))
    assert (width, height) == (96, 48)
    assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(48, 96, 4), crop)


def test_grey_rgb_and_palette_pngs_decode_to_rgba() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    ok, data = cv2.imencode(".png", grey)
    width, height, pixels = png.decode_rgba(data.tobytes())
    out = np.frombuffer(pixels, np.uint8).reshape(8, 8, 4)
    assert np.array_equal(out[..., 0], grey) and (out[..., 3] == 255).all()
    gray_png = png.encode_gray(8, 8, grey.tobytes())
    assert np.array_equal(cv2.imdecode(np.frombuffer(gray_png, np.uint8), 0), grey)


def test_server_encoder_round_trips_through_pure_decoder(chelsea: np.ndarray) -> None:
    data = encode_rgba(chelsea)
    width, height, pixels = png.decode_rgba(data)
    assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(height, width, 4), chelsea)


def test_size_is_read_from_the_header_alone() -> None:
    header_only = png.encode_rgba(3, 2, bytes(24))[:33]
    assert png.read_size(header_only) == (3, 2)


@pytest.mark.parametrize("cut", [10, 40, -20])
def test_truncated_png_is_refused(cut: int) -> None:
    data = png.encode_rgba(16, 16, bytes(range(256)) * 4)
    with pytest.raises(InvalidImage):
        png.decode_rgba(data[:cut])
    with pytest.raises(InvalidImage):
        decode_rgba(data[:cut], "image")


def test_not_a_png_is_refused() -> None:
    with pytest.raises(InvalidImage):
        png.read_size(b"GIF89a" + bytes(40))
