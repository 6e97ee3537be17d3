"""The GPU check: full-size FLUX.1-Kontext speed, peak memory and distance to the card's bf16 floor, in one run.

Builds a random-init FLUX.1 transformer (12B) with T5-XXL, CLIP-L and the FLUX VAE in bf16 from configs written
here (nothing is downloaded), saves them as a diffusers folder, and runs everything through the
:class:`~dreamomni2.session.Session` (so the memory modes and ``--quantize`` are the code users run):

1. ``full`` mode, 1/2/3 input images at 1024x1024, 28 steps: seconds per image and peak memory;
2. one LoRA training step (rank 16) with 2 references and gradient checkpointing;
3. every other memory mode and every quantizer the card supports, 1/2/3 images, a few timed steps, the
   28-step time extrapolated from the measured per-step time.

FLOPs per step come from the token counts (matmul FLOPs of the blocks plus attention); the measured step time is
compared with the card's peak dense bf16 throughput (:data:`PEAK_BF16_TFLOPS`) as a ratio to that physical floor.
The time budget (``--budget-s``, default 420 s) is enforced: a measurement that would not fit is skipped and listed.
Results go to ``--out`` as ``gpu_check.json`` and ``gpu_check.md`` (a table with the card's name, and a README
memory-table snippet of measured rows to paste), rewritten after every measurement.

``--tiny`` runs the same code on the CPU in seconds with a tiny config (``tests/benchmarks/test_gpu_check.py``).

Usage: python benchmarks/gpu_check.py [--out DIR] [--budget-s 420] [--tiny]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dreamomni2.knobs import QUANTIZERS  # measured in this order, as are the memory modes
from dreamomni2.memory import MEMORY_MODES

#: Peak dense bf16 tensor throughput (TFLOP/s, no sparsity) by a substring of ``torch.cuda.get_device_name()``;
#: first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2500.0), ("B200", 2250.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("H800", 989.0),
    ("GH200", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("RTX 6000 Ada", 364.0), ("RTX 5090", 209.0), ("RTX 4090", 165.0), ("RTX 4080", 97.0), ("RTX 3090", 71.0),
    ("A6000", 155.0), ("A10G", 70.0), ("A10", 125.0), ("V100", 125.0), ("T4", 65.0),
)  # fmt: skip
#: The full-size models (FLUX.1-Kontext-dev, T5-XXL encoder, CLIP-L, FLUX VAE).
FULL: dict[str, Any] = {
    "transformer": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                        guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
    "t5": dict(d_model=4096, d_ff=10240, d_kv=64, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu",
               relative_attention_num_buckets=32, relative_attention_max_distance=128),
    "clip": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 projection_dim=768, hidden_act="quick_gelu"),
    "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, norm_num_groups=32,
                sample_size=1024),
    "size": 1024, "steps": 28, "short_steps": 3, "text_tokens": 512, "lora_rank": 16, "other_refs": (1, 2, 3),
}  # fmt: skip
#: The same code on the CPU in seconds.
TINY: dict[str, Any] = {
    "transformer": dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        guidance_embeds=True, axes_dims_rope=(4, 6, 6)),
    "t5": dict(d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4, relative_attention_num_buckets=8),
    "clip": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 projection_dim=32, hidden_act="gelu"),
    "vae": dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                sample_size=32),
    "size": 64, "steps": 4, "short_steps": 2, "text_tokens": 16, "lora_rank": 4, "other_refs": (2,),
}  # fmt: skip
REFS = (1, 2, 3)


# ------------------------------------------------------------------------------------------- building


def build_folder(cfg: dict[str, Any], folder: Path, device: str, dtype: Any) -> Path:
    """Random-init every model of ``cfg`` (on ``device`` in ``dtype``), save a diffusers folder, free them."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from dreamomni2.pipeline import DreamOmni2Pipeline
    from dreamomni2.testing import _flux_scheduler, tiny_clip_tokenizer, tiny_t5_tokenizer

    clip_tok, t5_tok = tiny_clip_tokenizer(), tiny_t5_tokenizer(model_max_length=cfg["text_tokens"])
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in bf16 directly: a 12B model never exists in fp32
    try:
        with torch.device(device):
            parts = {
                "transformer": FluxTransformer2DModel(**cfg["transformer"]),
                "text_encoder_2": T5EncoderModel(T5Config(vocab_size=32128, pad_token_id=0, eos_token_id=1,
                                                          decoder_start_token_id=0, **cfg["t5"])),
                "text_encoder": CLIPTextModel(CLIPTextConfig(
                    vocab_size=len(clip_tok), max_position_embeddings=77, bos_token_id=clip_tok.bos_token_id,
                    eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id, **cfg["clip"])),
                "vae": AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                                     up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False,
                                     use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
                                     **cfg["vae"]),
            }  # fmt: skip
    finally:
        torch.set_default_dtype(old)
    pipe = DreamOmni2Pipeline(scheduler=_flux_scheduler(), tokenizer=clip_tok, tokenizer_2=t5_tok, **parts)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe, parts
    _free(device)
    return folder


def _free(device: str) -> None:
    import torch

    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------- FLOPs


def token_counts(cfg: dict[str, Any], n_images: int) -> dict[str, int]:
    """Target, reference and text tokens of one transformer call (16 px per token, as FLUX packs them)."""
    per_image = (cfg["size"] // 16) ** 2
    return {"target": per_image, "references": n_images * per_image, "text": cfg["text_tokens"]}


def flops_per_step(cfg: dict[str, Any], n_images: int, batch: int = 1) -> float:
    """Matmul FLOPs of one transformer forward: 2 x weights x tokens through each block, plus attention.

    A double-stream block holds one weight set per stream and each token goes through one of them; a single block's
    weights see every token. Attention costs ``4 T^2 d`` per block (``QK^T`` and ``AV``). Embeddings, norms and the
    per-sample modulation are left out (under 1% at full size).
    """
    t = cfg["transformer"]
    d = t["num_attention_heads"] * t["attention_head_dim"]
    tokens = sum(token_counts(cfg, n_images).values())
    double_stream = 4 * d * d + 2 * 4 * d * d  # q, k, v, out + a 4x MLP (up, down), per stream
    single = 3 * d * d + 4 * d * d + (d + 4 * d) * d  # q, k, v, MLP up, and proj_out over [attn, mlp]
    linear = 2 * tokens * (t["num_layers"] * double_stream + t["num_single_layers"] * single)
    attention = 4 * tokens * tokens * d * (t["num_layers"] + t["num_single_layers"])
    return float(batch * (linear + attention))


def peak_tflops(card: str) -> float | None:
    """The card's peak dense bf16 TFLOP/s from :data:`PEAK_BF16_TFLOPS` (``None`` for an unknown card or CPU)."""
    return next((v for k, v in PEAK_BF16_TFLOPS if k.lower() in card.lower()), None)


# ------------------------------------------------------------------------------------------- budget, output


class Budget:
    """Wall-clock budget: a measurement runs only when its estimate fits in what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = float(seconds), time.perf_counter()
        self.skipped: list[dict[str, str]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fits(self, name: str, estimate: float) -> bool:
        """Whether ``estimate`` seconds fit; a measurement that does not is recorded as skipped."""
        left = self.seconds - self.elapsed()
        if estimate <= left:
            return True
        self.skipped.append({"name": name, "why": f"needs ~{estimate:.0f}s, {max(left, 0):.0f}s left of the budget"})
        return False


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 1024**3 if str(device).startswith("cuda") else None


# ------------------------------------------------------------------------------------------- measuring


def _images(cfg: dict[str, Any], n: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(n)
    return [Image.fromarray(rng.integers(0, 256, (cfg["size"], cfg["size"], 3), dtype=np.uint8)) for _ in range(n)]


def _timed_request(session: Any, cfg: dict[str, Any], n_images: int, steps: int, device: str) -> dict[str, Any]:
    """One edit request; returns the wall time, each step's time and the peak memory."""
    from dreamomni2.request import Request

    marks: list[float] = []

    def on_step(step: int, total: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    size = cfg["size"]
    request = Request("edit", _images(cfg, n_images), "x", prompt="make the object in image 1 red", seed=0,
                      steps=steps, size=(size, size), max_area=size * size, progress=on_step)  # fmt: skip
    _reset_peak(device)
    start = time.perf_counter()
    session.run(request)
    _sync(device)
    total = time.perf_counter() - start
    steps_s = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    return {"total_s": total, "step_s": statistics.median(steps_s) if steps_s else total / steps,
            "first_step_end_s": marks[0] - start if marks else total, "peak_gib": _peak_gib(device)}  # fmt: skip


def measure_images(session: Any, cfg: dict[str, Any], n_images: int, steps: int, device: str) -> dict[str, Any]:
    """A 1-step warm-up, then ``steps`` timed steps; seconds per image at ``cfg['steps']`` (extrapolated if fewer)."""
    _timed_request(session, cfg, n_images, 1, device)
    m = _timed_request(session, cfg, n_images, steps, device)
    full = cfg["steps"]
    overhead = m["total_s"] - steps * m["step_s"]  # encode + decode + glue
    flops = flops_per_step(cfg, n_images)
    return {
        "images": n_images, "tokens": token_counts(cfg, n_images), "steps_run": steps, "steps": full,
        "extrapolated": steps != full, "s_per_image": m["total_s"] if steps == full else overhead + full * m["step_s"],
        "s_per_step": m["step_s"], "peak_gib": m["peak_gib"], "flops_per_step": flops,
    }  # fmt: skip


def train_step(session: Any, cfg: dict[str, Any], device: str, dtype: Any) -> dict[str, Any]:
    """One LoRA step (2 references, gradient checkpointing) on the session's transformer; timed after a warm-up."""
    import torch
    from peft import LoraConfig

    from dreamomni2.train.loss import flow_matching_loss

    tr = session.pipe.transformer
    tr.add_adapter(LoraConfig(r=cfg["lora_rank"], lora_alpha=cfg["lora_rank"],
                              target_modules=["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                                              "add_v_proj", "to_add_out"]))  # fmt: skip
    tr.enable_gradient_checkpointing()
    tr.train()
    params = [p for p in tr.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    c = cfg["transformer"]["in_channels"] // 4
    side = cfg["size"] // 8
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dtype)

    batch = (rand(1, c, side, side), [rand(1, c, side, side), rand(1, c, side, side)],
             rand(1, cfg["text_tokens"], cfg["transformer"]["joint_attention_dim"]),
             rand(1, cfg["transformer"]["pooled_projection_dim"]), rand(1, (side // 2) ** 2, 4 * c),
             torch.tensor([0.5], device=device))  # fmt: skip
    times = []
    for _ in range(2):
        _reset_peak(device)
        start = time.perf_counter()
        loss = flow_matching_loss(tr, *batch, guidance=1.0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - start)
    flops = 3 * flops_per_step(cfg, 2)  # forward + recomputed forward + input-gradient backward (frozen base)
    return {"images": 2, "lora_rank": cfg["lora_rank"], "gradient_checkpointing": True, "s_per_step": times[-1],
            "peak_gib": _peak_gib(device), "flops_per_step": flops, "loss": float(loss.detach()),
            "trainable_params": sum(p.numel() for p in params)}  # fmt: skip


# ------------------------------------------------------------------------------------------- the run


class Check:
    """The run's state: config, device, budget, the results so far (written after every measurement)."""

    def __init__(self, cfg: dict[str, Any], folder: Path, out: Path, device: str, budget: Budget, tiny: bool):
        import torch

        self.cfg, self.folder, self.out, self.device, self.budget = cfg, folder, out, device, budget
        self.dtype = torch.float32 if tiny else torch.bfloat16
        self.card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU"
        self.peak = peak_tflops(self.card) if device.startswith("cuda") else None
        self.results: dict[str, Any] = {
            "card": self.card, "device": device, "tiny": tiny, "dtype": str(self.dtype).replace("torch.", ""),
            "peak_bf16_tflops": self.peak, "size": cfg["size"], "steps": cfg["steps"], "runs": [], "train": None,
            "skipped": budget.skipped, "torch": torch.__version__, "budget_s": budget.seconds,
        }  # fmt: skip
        self.load_estimate = 1.0 if tiny else 40.0
        self.step_estimate = 0.05 if tiny else 1.0  # seconds per step at 2 images, refined by the first measurement

    def floor(self, record: dict[str, Any]) -> None:
        """Add the bf16 floor (FLOPs / peak) and the measured step time's ratio to it."""
        floor = record["flops_per_step"] / (self.peak * 1e12) if self.peak else None
        record["floor_s_per_step"] = floor
        record["ratio_to_floor"] = record["s_per_step"] / floor if floor else None

    def session(self, memory: str, quantize: str | None) -> Any:
        from dreamomni2.session import Session

        start = time.perf_counter()
        session = Session(str(self.folder), device=self.device, dtype=self.dtype, memory=memory, planner="none",
                          quantize=quantize, progress=False).load()  # fmt: skip
        self.load_estimate = max(self.load_estimate, time.perf_counter() - start)
        return session

    def estimate(self, n_images: int, steps: int, step_at_2: float | None = None) -> float:
        """Seconds a measurement at ``n_images`` takes (warm-up step included), from a step time at 2 images."""
        scale = flops_per_step(self.cfg, n_images) / flops_per_step(self.cfg, 2)
        return (steps + 1) * (step_at_2 or self.step_estimate) * scale * 1.3 + 2

    def write(self) -> None:
        from dreamomni2.io import atomic_write_text

        self.results["elapsed_s"] = round(self.budget.elapsed(), 1)
        atomic_write_text(self.out / "gpu_check.json", json.dumps(self.results, indent=1) + "\n")
        atomic_write_text(self.out / "gpu_check.md", markdown(self.results))


def _run_config(check: Check, memory: str, quantize: str | None, steps: int, refs: tuple[int, ...]) -> Any:
    """Measure one memory mode / quantizer at each image count that fits; returns the session (or ``None``)."""
    name = f"{memory}/{quantize or 'bf16'}"
    if not check.budget.fits(f"{name}: load", check.load_estimate + check.estimate(refs[0], steps)):
        return None
    try:
        session = check.session(memory, quantize)
    except ValueError as e:  # a quantizer this card or install cannot run: one line, as the CLI says it
        check.budget.skipped.append({"name": name, "why": str(e)})
        return None
    step_at_2 = None  # this config's own step time once measured (streaming modes are much slower)
    for n in refs:
        if not check.budget.fits(f"{name}: {n} image(s)", check.estimate(n, steps, step_at_2)):
            continue
        record = {"memory": memory, "quantize": quantize or "none"} | measure_images(
            session, check.cfg, n, steps, check.device
        )
        check.floor(record)
        step_at_2 = record["s_per_step"] * flops_per_step(check.cfg, 2) / record["flops_per_step"]
        if memory == "full" and quantize is None:
            check.step_estimate = step_at_2
        check.results["runs"].append(record)
        check.write()
    return session


def run_check(check: Check) -> dict[str, Any]:
    """Every measurement in priority order (full mode at 28 steps first), within the budget."""
    cfg, short = check.cfg, check.cfg["short_steps"]
    session = _run_config(check, "full", None, cfg["steps"], (2, 1, 3))
    if session is not None and check.budget.fits("train: LoRA step", 3 * check.estimate(2, 2)):
        record = train_step(session, cfg, check.device, check.dtype)
        check.floor(record)
        check.results["train"] = record
        check.write()
    del session
    _free(check.device)
    for memory, quantize in [(m, None) for m in MEMORY_MODES[1:]] + [("full", q) for q in QUANTIZERS]:
        session = _run_config(check, memory, quantize, short, cfg["other_refs"])
        del session
        _free(check.device)
    check.write()
    return check.results


# ------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown: runs, the training step, skipped measurements and a README memory-table snippet."""
    head = (f"### GPU check: {results['card']}\n\n{results['dtype']}, {results['size']}x{results['size']} output and "
            f"inputs, {results['steps']} steps, peak dense bf16 {_fmt(results['peak_bf16_tflops'], '.0f', ' TFLOP/s')}"
            f", torch {results['torch']}, {results.get('elapsed_s', 0):.0f} s of a {results['budget_s']:.0f} s "
            "budget.\n")  # fmt: skip
    lines = [head, "| memory | quantize | images | tokens | s/image | s/step | peak | TFLOP/step | floor s/step | "
             "ratio to floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results["runs"]:
        tokens = sum(r["tokens"].values())
        lines.append(
            f"| {r['memory']} | {r['quantize']} | {r['images']} | {tokens} | {r['s_per_image']:.2f}"
            f"{'*' if r['extrapolated'] else ''} | {r['s_per_step']:.3f} | {_fmt(r['peak_gib'], '.1f', ' GiB')} | "
            f"{r['flops_per_step'] / 1e12:.3g} | {_fmt(r['floor_s_per_step'], '.3f')} | "
            f"{_fmt(r['ratio_to_floor'], '.2f', 'x')} |"
        )
    lines.append(f"\n\\* extrapolated to {results['steps']} steps from the measured per-step time.")
    t = results["train"]
    if t:
        lines.append(f"\nLoRA training step (rank {t['lora_rank']}, 2 references, gradient checkpointing): "
                     f"{t['s_per_step']:.2f} s, peak {_fmt(t['peak_gib'], '.1f', ' GiB')}, "
                     f"{t['flops_per_step'] / 1e12:.3g} TFLOP, "
                     f"ratio to floor {_fmt(t['ratio_to_floor'], '.2f', 'x')}.")  # fmt: skip
    if results["skipped"]:
        lines.append("\nSkipped: " + "; ".join(f"{s['name']} ({s['why']})" for s in results["skipped"]) + ".")
    lines += ["", readme_snippet(results)]
    return "\n".join(lines) + "\n"


def readme_snippet(results: dict[str, Any]) -> str:
    """Measured rows for the README's memory table (peak GiB per memory mode and image count, no planner)."""
    peaks: dict[tuple[str, str], dict[int, float]] = {}
    for r in results["runs"]:
        if r["peak_gib"] is not None:
            peaks.setdefault((r["memory"], r["quantize"]), {})[r["images"]] = r["peak_gib"]
    lines = [f"README memory table, measured rows ({results['card']}, no local planner; paste under the table):", "",
             "| Mode | quantize | Peak, 1 image | Peak, 2 images | Peak, 3 images | Source |",
             "|---|---|---:|---:|---:|---|"]  # fmt: skip
    for (memory, quantize), by_n in peaks.items():
        cells = " | ".join(_fmt(by_n.get(n), ".1f", " GiB") for n in REFS)
        lines.append(f"| `{memory}` | {quantize} | {cells} | measured, `benchmarks/gpu_check.py` |")
    if not peaks:
        lines.append("| (no GPU measurements) | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="folder for gpu_check.json / .md")
    ap.add_argument("--budget-s", type=float, default=None, help="time budget (default 420; 15 with --tiny)")
    ap.add_argument("--tiny", action="store_true", help="tiny config on the CPU (seconds)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the random model folder is written")
    args = ap.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run with --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s if args.budget_s is not None else (15.0 if args.tiny else 420.0))
    cfg, device = (TINY, "cpu") if args.tiny else (FULL, "cuda")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="gpu_check_") as tmp:
        check_dtype = torch.float32 if args.tiny else torch.bfloat16
        folder = build_folder(cfg, Path(tmp) / "model", device, check_dtype)
        check = Check(cfg, folder, args.out, device, budget, args.tiny)
        check.results["build_s"] = round(budget.elapsed(), 1)
        results = run_check(check)
    print(markdown(results))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
