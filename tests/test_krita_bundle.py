"""The Krita plugin zip: what it holds, that it builds the same twice, and the command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from brushlink.bridges.krita.bundle import build


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bundle"))


def test_bundle_holds_plugin_core_and_pure_python_websockets(bundle: Path) -> None:
    names = zipfile.ZipFile(bundle).namelist()
    assert "brushlink.desktop" in names
    assert "brushlink_krita/" in names  # Krita's importer looks for the folder entry
    for module in ("api", "docker", "docker_form", "selection", "layers", "core", "runner",
                   "live", "history", "panels", "widgets", "options", "images"):  # fmt: skip
        assert f"brushlink_krita/{module}.py" in names
    for module in ("blocking", "client", "codec", "host", "protocol", "regions", "request"):
        assert f"brushlink_krita/_plugin/{module}.py" in names
    assert "brushlink_krita/vendor/websockets/asyncio/client.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]
    desktop = zipfile.ZipFile(bundle).read("brushlink.desktop").decode()
    assert "X-KDE-Library=brushlink_krita" in desktop


def test_bundle_builds_the_same_zip_twice(tmp_path: Path, bundle: Path) -> None:
    again = build(tmp_path)
    assert again.read_bytes() == bundle.read_bytes()


def test_bundle_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brushlink.server.cli.main", "bundle", "krita", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.glob("brushlink-krita-*.zip"))
