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
