"""`brushlink bench krita`: what a painter waits for around a job, measured inside real Krita.

Builds the plugin zip, starts a server on loopback, and runs in_krita/brushlink_krita_bench.py
with kritarunner (headless, with its own temporary Krita settings) on a photo at 1024² and
2048²: reading the canvas, the request out, the server's decode and encode, the result back,
writing the layer, for raw B, G, R, A pixels and PNG side by side, the model's time left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from brushlink.server.benchmarks.serving import start_server

HERE = Path(__file__).resolve().parent
GOALS_MS = {1024: 100, 2048: 300}


def _photo(side: int, path: Path) -> str:
    import cv2
    from skimage import data

    cv2.imwrite(
        str(path), cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (side, side))
    )
    return str(path)


def run_krita_bench(repeats: int = 5) -> dict[str, Any]:
    kritarunner = shutil.which("kritarunner")
    if kritarunner is None:
        raise SystemExit("Krita is not installed: kritarunner was not found")
    from .bundle import build

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        runtime = work / "runtime"
        runtime.mkdir(mode=0o700)
        proc, url, token = start_server(work / "home")
        try:
            config = {
                "zip": str(build(work / "dist")),
                "url": url,
                "token": token,
                "photos": {str(s): _photo(s, work / f"photo-{s}.png") for s in GOALS_MS},
                "repeats": repeats,
                "report": str(work / "report.json"),
            }
            (work / "config.json").write_text(json.dumps(config))
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": str(work / "krita-home"),
                "QT_QPA_PLATFORM": "offscreen",
                "XDG_DATA_HOME": str(work / "data"),
                "XDG_CONFIG_HOME": str(work / "config"),
                "XDG_CACHE_HOME": str(work / "cache"),
                "XDG_RUNTIME_DIR": str(runtime),
                "BRUSHLINK_KRITA_BENCH": str(work / "config.json"),
                "PYTHONPATH": str(HERE / "in_krita"),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            run = subprocess.run(
                [kritarunner, "-s", "brushlink_krita_bench"],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            path = work / "report.json"
            if not path.exists():
                raise SystemExit(
                    f"Krita wrote no report:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
                )
            report: dict[str, Any] = json.loads(path.read_text())
        finally:
            proc.terminate()
            proc.wait()
    if "error" in report:
        raise SystemExit(f"the benchmark failed inside Krita:\n{report['error']}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brushlink bench krita")
    parser.add_argument("--repeats", type=int, default=5, help="timed jobs per row (median)")
    args = parser.parse_args(argv)
    report = run_krita_bench(args.repeats)
    print("Krita round trip of a canvas, model time excluded (median of "
          f"{args.repeats}; style/filters/detail at strength 0)")  # fmt: skip
    print(
        f"  {'canvas':<7}{'encoding':<11}{'read':>7}{'out':>8}{'server':>8}{'back':>8}"
        f"{'write':>8}{'total':>9}{'goal':>7}{'model':>8}"
    )
    for row in report["runs"]:
        side = row["side"]
        print(
            f"  {f'{side}²':<7}{row['encoding']:<11}{row['read']:7.1f}{row['out']:8.1f}"
            f"{row['server']:8.1f}{row['back']:8.1f}{row['write']:8.1f}{row['total']:9.1f}"
            f"{GOALS_MS[side]:7d}{row['model']:8.1f}"
        )
    print("  (milliseconds; goal: the total at most 100 ms at 1024², 300 ms at 2048²)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
