"""A brushlink server in a child process, for the benches that measure one from outside."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

READY = "brushlink listening on "


def start_server(
    home: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[str], str, str]:
    """``brushlink serve`` on a free port with ``home`` (and ``args``): the process, its
    websocket URL and its token, once it listens. Lines it prints before that (another door's
    address) are passed over."""
    command = [sys.executable, "-m", "brushlink.server.cli.main", "serve", "--port", "0"]
    command += ["--home", str(home), "--log-level", "WARNING", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(READY):
            return proc, line.split()[-1], (home / "token").read_text().strip()
    proc.kill()
    raise RuntimeError(f"the benchmark server did not start: brushlink serve {' '.join(args)}")
