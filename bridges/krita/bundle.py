"""Build the Krita plugin zip (Tools > Scripts > Import Python Plugin from File).

    brushlink.desktop
    brushlink_krita/                 the plugin (this folder's brushlink_krita/)
    brushlink_krita/_plugin/         a copy of brushlink.plugin, the client core
    brushlink_krita/vendor/websockets/   pure-Python websockets (no compiled speedups)

Krita's importer extracts only the .desktop file and the package folder, so everything the
plugin needs lives inside ``brushlink_krita/``. The client core is imported package-relative,
so it never clashes with a brushlink installed in the same Python.
"""

from __future__ import annotations

import importlib.metadata
import re
import zipfile
from pathlib import Path

import websockets

from brushlink import plugin as client_core

HERE = Path(__file__).resolve().parent
PACKAGE = "brushlink_krita"
# The bundled core must only import itself (relatively), the standard library and websockets.
_FOREIGN_IMPORT = re.compile(r"^\s*(from|import)\s+(brushlink|numpy|torch|PIL|cv2)\b", re.M)
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    # Krita's importer finds the package by its folder entry: write each folder once.
    folders = name.split("/")[:-1]
    for depth in range(1, len(folders) + 1):
        folder = "/".join(folders[:depth]) + "/"
        if folder not in archive.NameToInfo:
            entry = zipfile.ZipInfo(folder, date_time=_ZIP_TIME)
            entry.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(entry, b"")
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _websockets_license() -> bytes | None:
    try:
        dist = importlib.metadata.distribution("websockets")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.name.upper().startswith("LICENSE"):
            return Path(dist.locate_file(file)).read_bytes()
    return None


def build(out_dir: Path) -> Path:
    """Write ``brushlink-krita-<version>.zip`` into ``out_dir`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("brushlink")
    target = out_dir / f"brushlink-krita-{version}.zip"
    tmp = target.with_suffix(".zip.part")

    plugin_src = HERE / PACKAGE
    core_src = Path(client_core.__file__).resolve().parent
    ws_src = Path(websockets.__file__).resolve().parent

    with zipfile.ZipFile(tmp, "w") as archive:
        _add(archive, "brushlink.desktop", (HERE / "brushlink.desktop").read_bytes())
        for path in _python_files(plugin_src):
            rel = path.relative_to(plugin_src)
            if rel.parts[0] in ("_plugin", "vendor"):
                continue  # left over from a manual install into the source tree
            _add(archive, f"{PACKAGE}/{rel.as_posix()}", path.read_bytes())
        for path in _python_files(core_src):
            source = path.read_text(encoding="utf-8")
            match = _FOREIGN_IMPORT.search(source)
            if match:
                raise RuntimeError(
                    f"{path.name} imports `{match.group(2)}`, which Krita's Python does not have; "
                    "the client core may only use the standard library and websockets."
                )
            rel = path.relative_to(core_src).as_posix()
            _add(archive, f"{PACKAGE}/_plugin/{rel}", source.encode("utf-8"))
        # Only .py files: the compiled speedups are skipped and websockets falls back to
        # its pure-Python frame masking.
        for path in _python_files(ws_src):
            rel = path.relative_to(ws_src).as_posix()
            _add(archive, f"{PACKAGE}/vendor/websockets/{rel}", path.read_bytes())
        if (ws_src / "py.typed").exists():
            _add(archive, f"{PACKAGE}/vendor/websockets/py.typed", b"")
        license_text = _websockets_license()
        if license_text:
            _add(archive, f"{PACKAGE}/vendor/websockets/LICENSE", license_text)
        _add(
            archive,
            f"{PACKAGE}/vendor/VERSIONS.txt",
            f"brushlink {version}\nwebsockets {websockets.__version__}\n".encode(),
        )
    tmp.replace(target)
    return target
