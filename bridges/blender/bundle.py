"""Build the installable Blender extension zip (``brushlink bundle blender -o DIR``).

The zip holds the extension's modules, its manifest and two pure-Python wheels in ``wheels/``
that Blender installs next to it: ``websockets`` and ``brushlink_plugin`` (the client core). Both
are built from the packages installed here, leaving out compiled speed-ups (websockets falls back
to pure Python), so bundling works offline and the zip runs on every platform Blender does.
Timestamps are fixed, so the same sources give the same zip byte for byte.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import re
import sys
import zipfile
from pathlib import Path

EXTENSION_DIR = Path(__file__).resolve().parent / "extension"
MANIFEST = "blender_manifest.toml"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: reproducible archives
_SOURCE_SUFFIXES = (".py", ".typed")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"Cannot bundle: the package {name} is not installed.")
    return Path(next(iter(spec.submodule_search_locations)))


def _sources(root: Path) -> list[Path]:
    """Pure-Python files of a package, in a stable order (no caches, no compiled modules)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
    )


def _version(distribution: str, fallback: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return fallback


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_wheel(distribution: str, version: str, files: dict[str, bytes]) -> tuple[str, bytes]:
    """A py3-none-any wheel holding ``files`` (archive path -> bytes): (file name, wheel bytes)."""
    dist = re.sub(r"[-_.]+", "_", distribution)
    info_dir = f"{dist}-{version}.dist-info"
    meta = {
        f"{info_dir}/METADATA": (
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
            "Summary: Pure-Python build bundled with the brushlink Blender extension\n"
        ).encode(),
        f"{info_dir}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: brushlink-bundle\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    entries = {**files, **meta}
    record = "\n".join(
        [*(_record_line(path, data) for path, data in entries.items()), f"{info_dir}/RECORD,,"]
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in entries.items():
            _write(archive, path, data)
        _write(archive, f"{info_dir}/RECORD", (record + "\n").encode())
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def _package_files(package: str, prefix: str) -> dict[str, bytes]:
    root = _package_dir(package)
    return {f"{prefix}/{p.relative_to(root).as_posix()}": p.read_bytes() for p in _sources(root)}


def check_host_safe(files: dict[str, bytes]) -> None:
    """Refuse a client core that imports beyond the standard library and websockets: Blender's
    Python has nothing else (no numpy guarantee for the core, never torch)."""
    allowed = set(sys.stdlib_module_names) | {"websockets", "brushlink"}
    for path, data in files.items():
        for node in ast.walk(ast.parse(data, filename=path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in allowed:
                    raise RuntimeError(
                        f"Cannot bundle: {path} imports {name}, which Blender lacks."
                    )


def wheels() -> dict[str, bytes]:
    """The wheels the extension needs, by file name."""
    core = _package_files("brushlink.plugin", "brushlink/plugin")
    check_host_safe(core)
    built = [
        build_wheel(
            "websockets",
            _version("websockets", "0"),
            _package_files("websockets", "websockets"),
        ),
        build_wheel(
            "brushlink_plugin",
            _version("brushlink", "0.1.0"),
            core,
        ),
    ]
    return dict(built)


def _manifest(wheel_names: list[str]) -> tuple[str, str]:
    """The manifest with its wheels listed, and the extension's version."""
    text = (EXTENSION_DIR / MANIFEST).read_text(encoding="utf-8")
    listed = ", ".join(f'"./wheels/{name}"' for name in wheel_names)
    text, count = re.subn(r"(?m)^wheels = \[.*\]$", f"wheels = [{listed}]", text)
    if count != 1:
        raise RuntimeError(f"{MANIFEST} needs one `wheels = [...]` line for the bundler to fill.")
    version = re.search(r'(?m)^version = "([^"]+)"', text)
    return text, version.group(1) if version else "0"


def build(out_dir: Path) -> Path:
    """Write ``brushlink-blender-<version>.zip`` into ``out_dir`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel_files = wheels()
    manifest, version = _manifest(sorted(wheel_files))
    target = out_dir / f"brushlink-blender-{version}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w") as archive:
        _write(archive, MANIFEST, manifest.encode("utf-8"))
        for path in _sources(EXTENSION_DIR):
            _write(archive, path.relative_to(EXTENSION_DIR).as_posix(), path.read_bytes())
        for name in sorted(wheel_files):
            _write(archive, f"wheels/{name}", wheel_files[name])
    partial.replace(target)  # never leave a half-written zip under the final name
    return target
