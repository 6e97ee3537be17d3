"""REST server latency and throughput on the mini model, and a warm request against a cold CLI run of the same job.

Starts ``dreamomni2 serve`` (the shipped mini model, loopback, any free port) as a user would, then sends the same
edit (a mini-world ``replace`` case: three 32x32 images, the model's 20 steps) from 1, 4 and 16 concurrent
clients, each sending its requests back to back with distinct seeds; latency is measured at the client (queueing
included), throughput is requests per second of wall time. The cold run is ``dreamomni2 edit`` as a subprocess
(interpreter start, imports, model load, one request); the warm request is the median latency at one client.
The CLI's image is checked against the server's for the same seed.

Usage: python benchmarks/server_latency.py [--requests 48] [--concurrency 1,4,16] [--cli-runs 3] [--threads N]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100)."""
    ordered = sorted(values)
    return ordered[max(0, int(np.ceil(q / 100 * len(ordered))) - 1)]


def job(folder: Path) -> tuple[str, list[Path]]:
    """The benchmark's edit: a mini-world replace case, its images written as PNGs."""
    from dreamomni2.mini.world import make_cases, render

    case = next(c for c in make_cases(0, 40, paraphrase=False) if c.kind == "replace")
    paths = []
    for i, scene in enumerate(case.images):
        paths.append(folder / f"image{i + 1}.png")
        render(scene).save(paths[-1])
    return case.instruction, paths


def env(threads: int | None) -> dict[str, str]:
    out = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    out.pop("DREAMOMNI2_API_KEY", None)
    if threads:
        out.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return out


def start_server(threads: int | None, queue: int) -> tuple[subprocess.Popen, str, float]:
    """Start the server; returns the process, its URL and the seconds until its ready line."""
    cmd = [sys.executable, "-m", "dreamomni2.cli", "serve", "--quiet", "--port", "0", "--queue", str(queue)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env(threads))
    line = proc.stdout.readline()
    if "ready on " not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split("ready on ")[1].split()[0], time.perf_counter() - start


def request_edit(client: httpx.Client, instruction: str, files: list[bytes], seed: int) -> tuple[float, bytes]:
    """One edit; returns its latency and the image's PNG bytes."""
    parts = [("image[]", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)]
    start = time.perf_counter()
    r = client.post("/v1/images/edits", files=parts, data={"prompt": instruction, "seed": str(seed)})
    latency = time.perf_counter() - start
    r.raise_for_status()
    return latency, base64.b64decode(r.json()["data"][0]["b64_json"])


def load_level(url: str, instruction: str, files: list[bytes], clients: int, total: int) -> dict[str, float]:
    """``total`` requests from ``clients`` concurrent clients; latency percentiles and throughput."""
    seeds = list(range(total))

    def client_run(k: int) -> list[float]:
        with httpx.Client(base_url=url, timeout=600) as c:
            return [request_edit(c, instruction, files, s)[0] for s in seeds[k::clients]]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for batch in pool.map(client_run, range(clients)) for t in batch]
    wall = time.perf_counter() - start
    return {"clients": clients, "n": len(latencies), "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95), "throughput": len(latencies) / wall}  # fmt: skip


def cold_cli(paths: list[Path], instruction: str, out: Path, threads: int | None) -> float:
    """Wall time of ``dreamomni2 edit`` as a fresh subprocess (seed 0, like the server's first request)."""
    cmd = [sys.executable, "-m", "dreamomni2.cli", "edit", *map(str, paths), "-i", instruction, "-o", str(out),
           "--seed", "0", "--quiet", "--force"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env(threads))
    return time.perf_counter() - start


def same_pixels(png: bytes, path: Path) -> bool:
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return bool(np.array_equal(a, np.asarray(Image.open(path).convert("RGB"))))


def report(levels: list[dict], warm: float, cold: list[float], same: bool, startup: float, args) -> str:
    """The markdown table."""
    import torch

    lines = [
        f"Mini model (32x32, 20 steps), CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"server threads: {args.threads or torch.get_num_threads()}, {args.requests} requests per level, "
        f"server start to ready: {startup:.1f} s.",
        "",
        "| clients | requests | p50 latency (s) | p95 latency (s) | throughput (req/s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {lv['clients']} | {lv['n']} | {lv['p50']:.3f} | {lv['p95']:.3f} | {lv['throughput']:.2f} |"
              for lv in levels]  # fmt: skip
    cold_median = statistics.median(cold)
    lines += [
        "",
        "| same edit | wall time (s) |",
        "|---|---:|",
        f"| warm server request (p50, 1 client) | {warm:.3f} |",
        f"| cold CLI run, `dreamomni2 edit` (median of {len(cold)}) | {cold_median:.2f} |",
        f"| ratio cold / warm | {cold_median / warm:.0f}x |",
        "",
        f"CLI image equals the server's for the same seed: {'yes' if same else 'NO'}.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    p.add_argument("--cli-runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads of the server and the CLI runs")
    args = p.parse_args()
    levels_wanted = [int(x) for x in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        instruction, paths = job(Path(tmp))
        files = [path.read_bytes() for path in paths]
        proc, url, startup = start_server(args.threads, queue=max(levels_wanted))
        try:
            with httpx.Client(base_url=url, timeout=600) as c:
                server_png = request_edit(c, instruction, files, 0)[1]
                for s in range(3):
                    request_edit(c, instruction, files, s)
            levels = [load_level(url, instruction, files, n, args.requests) for n in levels_wanted]
        finally:
            proc.terminate()
            proc.wait(30)
        out = Path(tmp) / "cli.png"
        cold = [cold_cli(paths, instruction, out, args.threads) for _ in range(args.cli_runs)]
        same = same_pixels(server_png, out)
    warm = next((lv["p50"] for lv in levels if lv["clients"] == 1), levels[0]["p50"])
    print(report(levels, warm, cold, same, startup, args))


if __name__ == "__main__":
    main()
