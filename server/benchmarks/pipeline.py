"""`brushlink bench pipeline`: the same Stable Diffusion job through a running server and through a
bare diffusers call, side by side in one run, and the ratio of the two.

On the CPU it uses SD 1.5's architecture with narrow layers (128x128, 10 steps); on a GPU SD
1.5's exact shapes with random weights (timing does not depend on the weights) at 512x512, 20 steps, in half precision.
The server runs in a subprocess and is driven by the real client over the loopback socket, so
the server side includes everything an artist's request pays for: PNG encoding, websocket
frames, validation, queueing, per-step progress and previews. Runs alternate (bare, server,
bare, ...) so both see the same machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .serving import start_server

RUNS = 15
CPU_THREADS = 1  # a CPU shared with other work times more steadily on one thread


def _settings(cuda: bool) -> dict[str, Any]:
    if cuda:
        return {"size": 512, "steps": 20, "model": "SD 1.5-sized UNet, random weights, fp16"}
    return {"size": 128, "steps": 10, "model": "narrow SD 1.5, random weights"}


def _start_server(home: Path, device: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    if device == "cpu":  # the same thread count on both sides
        env["OMP_NUM_THREADS"] = str(CPU_THREADS)
    proc, url, _ = start_server(home, "--device", device, env=env)
    return proc, url


def run_pipeline_bench(runs: int = RUNS) -> dict[str, Any]:
    """Median seconds per job, bare and through the server, and their ratio."""
    import torch
    from diffusers import StableDiffusionPipeline

    from brushlink.plugin.client import Client
    from brushlink.plugin.home import read_token
    from brushlink.plugin.request import Job, Request

    from .random_pipelines import sd15

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if not cuda:
        torch.set_num_threads(CPU_THREADS)
    settings = _settings(cuda)
    size, steps = settings["size"], settings["steps"]
    prompt = "a lighthouse on a cliff at dusk"
    with tempfile.TemporaryDirectory(prefix="brushlink-bench-") as tmp:
        home = Path(tmp)
        folder = home / "models" / "checkpoints" / "bench"
        source = sd15(full=cuda)
        if cuda:
            source.to(torch_dtype=torch.float16)
        source.save_pretrained(folder)
        del source

        # the bare call: the same folder, the same precision, the same settings
        dtype = torch.float16 if cuda else torch.float32
        bare = StableDiffusionPipeline.from_pretrained(
            str(folder), local_files_only=True, torch_dtype=dtype, safety_checker=None
        ).to(device)
        bare.set_progress_bar_config(disable=True)
        if cuda:
            bare.unet.to(memory_format=torch.channels_last)
            bare.vae.to(memory_format=torch.channels_last)

        def run_bare(seed: int) -> float:
            generator = torch.Generator("cpu").manual_seed(seed)
            started = time.perf_counter()
            image = bare(prompt, height=size, width=size, num_inference_steps=steps,
                         generator=generator, output_type="np").images[0]  # fmt: skip
            _ = (image * 255).round().astype("uint8")  # the server also converts to 8 bits
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - started

        proc, url = _start_server(home, device)
        try:
            token = read_token(home)

            async def serve_jobs() -> tuple[list[float], list[float]]:
                bare_times: list[float] = []
                server_times: list[float] = []
                async with Client(url, token) as client:
                    spec = dict(prompt=prompt, model="bench", width=size, height=size, steps=steps)
                    # warm-up: both load their weights and compile kernels before timing
                    await client.run(Job(Request(**spec, seed=0)))
                    run_bare(0)
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    for i in range(runs):
                        bare_times.append(run_bare(i + 1))
                        started = time.perf_counter()
                        await client.run(Job(Request(**spec, seed=i + 1)))
                        server_times.append(time.perf_counter() - started)
                return bare_times, server_times

            bare_times, server_times = asyncio.run(serve_jobs())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    bare_s = statistics.median(bare_times)
    server_s = statistics.median(server_times)
    # the fastest run of each side: least disturbed by whatever else the machine was doing
    best_ratio = min(server_times) / min(bare_times)
    return {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": settings["model"],
        "size": f"{size}x{size}",
        "steps": steps,
        "runs": runs,
        "bare_s": round(bare_s, 4),
        "server_s": round(server_s, 4),
        "ratio": round(server_s / bare_s, 4),
        "overhead_pct": round(100.0 * (server_s / bare_s - 1.0), 2),
        "best_ratio": round(best_ratio, 4),
        "bare_it_s": round(steps / bare_s, 2),
        "server_it_s": round(steps / server_s, 2),
        "bare_peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "bare_all_s": [round(t, 4) for t in bare_times],
        "server_all_s": [round(t, 4) for t in server_times],
    }


def main() -> int:
    result = run_pipeline_bench()
    print(f"pipeline bench on {result['device']}: {result['model']}, "
          f"{result['size']}, {result['steps']} steps, median of {result['runs']} runs")  # fmt: skip
    print(f"  bare diffusers call : {result['bare_s']:.4f} s/job  ({result['bare_it_s']} it/s)")
    print(f"  through the server  : {result['server_s']:.4f} s/job  ({result['server_it_s']} it/s)")
    print(
        f"  ratio server/bare   : {result['ratio']:.4f}  (overhead {result['overhead_pct']:+.2f} %)"
    )
    print(f"  ratio of the fastest runs: {result['best_ratio']:.4f}")
    if result["bare_peak_mem_mib"] is not None:
        print(f"  peak GPU memory (bare): {result['bare_peak_mem_mib']} MiB")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
