"""The client core (``brushlink.plugin``) as this plugin sees it.

In the bundle users import into Krita, the core is copied into ``brushlink_krita/_plugin`` and
imported package-relative, so an installed brushlink of another version never shadows it;
``vendor/`` holds a pure-Python ``websockets`` (Krita's Python has none). Run from a source
checkout (no ``_plugin`` folder), the installed ``brushlink.plugin`` is used instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_VENDOR = _HERE / "vendor"

if _VENDOR.is_dir() and str(_VENDOR) not in sys.path:
    # First on the path: Debian's python3-websockets (10.x) lacks the asyncio API the client uses.
    sys.path.insert(0, str(_VENDOR))


def _masked_faster() -> None:
    """Krita's Python has no compiled ``websockets``: its pure-Python mask (every frame a
    client sends is XORed with a 4-byte key) turns the whole payload into one big integer,
    about 45 ms for a 1024² canvas. Four strided ``bytes.translate`` calls give the same bytes
    in a quarter of the time."""
    try:
        from websockets import frames, utils
    except ImportError:  # pragma: no cover - no websockets: the client reports it
        return
    if frames.apply_mask is not utils.apply_mask:
        return  # the compiled speed-up is there

    tables = [bytes(i ^ key for i in range(256)) for key in range(256)]

    def apply_mask(data, mask):  # type: ignore[no-untyped-def]
        if len(mask) != 4:
            raise ValueError("mask must contain 4 bytes")
        data = bytes(data)
        out = bytearray(len(data))
        for k in range(4):
            out[k::4] = data[k::4].translate(tables[mask[k]])
        return out  # the frame writer copies it once more: no need to copy it here

    frames.apply_mask = apply_mask


_masked_faster()

if (_HERE / "_plugin").is_dir():
    from ._plugin import codec, errors, frames, home, host, protocol, regions, request
else:  # pragma: no cover - running from a source checkout
    from brushlink.plugin import (  # type: ignore[no-redef]
        codec,
        errors,
        frames,
        home,
        host,
        protocol,
        regions,
        request,
    )

__all__ = ["codec", "errors", "frames", "home", "host", "protocol", "regions", "request"]
