"""The mini model recipe: a FLUX.1-Kontext-architecture pipeline trained from scratch on the mini world.

Stages (each a function, all driven by :func:`build_mini_model`):

1. ``train_vae`` — a small ``AutoencoderKL`` (3 blocks: 32 px -> 8x8x16 latents, 16 tokens per image)
   trained on mini-world renders; latent shift/scale measured afterwards.
2. ``build_base_pipeline`` — word-level T5 tokenizer for the world's canonical vocabulary (unknown
   words fall back to characters), tiny random frozen CLIP/T5 encoders (the T5's position bias set so that
   its tokens know their neighbours: :func:`make_order_aware`), the transformer (2 double +
   4 single blocks, 4 heads x 32, about 2.4M parameters) and the scheduler, saved as a diffusers folder.
3. ``write_training_data`` — mini-world cases (training seeds < 1_000_000) as a manifest whose
   ``prompt`` column is the canonical prompt.
4. The project's trainer (:mod:`dreamomni2.train`) fine-tunes the whole transformer (``network.type:
   full``) on that manifest; the continuation stages (:data:`CONTINUATION`) go on, each on a draw of its own
   that favours the abstract groups (:data:`ABSTRACT_MIX`). The result is a complete pipeline folder.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dreamomni2.mini.groups import GROUP_NAMES, group_weights

logger = logging.getLogger(__name__)

__all__ = [
    "ABSTRACT_MIX", "CONTINUATION", "MINI_SIZE", "Stage", "build_base_pipeline", "build_mini_model", "check_base",
    "make_order_aware", "mini_t5_tokenizer", "train_config", "train_vae",
]  # fmt: skip

MINI_SIZE = 32  # pixels per side of every mini-world image
LATENT_CHANNELS = 16
VAE_BLOCKS = (16, 32, 32)  # 3 blocks: 32 px -> 8x8 latents -> 16 tokens per image after 2x2 packing
TEXT_TOKENS = 32  # T5 sequence length of the mini model
BATCH_SIZE = 32  # every training stage's global batch (split over the worker processes)
#: CLI/pipeline defaults stored beside the model (``dreamomni2.json``): 32 px images, no snapping.
MODEL_DEFAULTS = {"auto_resize": False, "max_area": 32 * 32, "reference_max_area": 32 * 32, "steps": 20,
                  "guidance": 3.5, "planner": "mini"}  # fmt: skip
#: The continuation stages' group mix: the concrete groups, learned first, get one share each; the abstract ones
#: get the rest (in :data:`~dreamomni2.mini.groups.GROUP_NAMES` order: edit/concrete 1, edit/abstract 3,
#: generate/concrete 1, generate/abstract 5).
ABSTRACT_MIX: dict[str, int] = dict(zip(GROUP_NAMES, (1, 3, 1, 5), strict=True))
CLIP_TOKENS = 160  # the character-level CLIP sees whole prompts (only its pooled vector is used)


def canonical_vocabulary() -> list[str]:
    """Every word and symbol of the world's canonical prompts (from a large sample of cases)."""
    import re

    from dreamomni2.mini.cases import make_cases

    words: set[str] = set()
    for case in make_cases(seed=999_999, n=4000, paraphrase=False):
        words.update(re.findall(r"[a-z]+|\d+|[^\sa-z\d]", case.prompt.lower()))
    return sorted(words)


def mini_t5_tokenizer(words: list[str] | None = None):
    """A Unigram T5 tokenizer with one piece per known word; unknown words split into characters."""
    import string

    from transformers import T5Tokenizer

    words = words or canonical_vocabulary()
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -5.0)]
    seen = {p for p, _ in pieces}
    for w in words:
        for piece in (f"▁{w}", f"▁{w.capitalize()}", w):
            if piece not in seen:
                pieces.append((piece, -1.0))
                seen.add(piece)
    for c in string.ascii_letters + string.digits + string.punctuation:
        if c not in seen:
            pieces.append((c, -8.0))
            seen.add(c)
    tok = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=TEXT_TOKENS)
    return tok


def _random_scenes(rng: random.Random, n: int):
    from dreamomni2.mini.scene import VOCAB, Obj, Scene

    return [
        Scene(
            Obj(*(rng.choice(VOCAB[a]) for a in ("shape", "color", "pattern", "size"))), rng.choice(VOCAB["background"])
        )
        for _ in range(n)
    ]


def _render_batch(scenes, size: int = MINI_SIZE) -> torch.Tensor:
    from dreamomni2.mini.scene import render_array

    arr = np.stack([render_array(s, size) for s in scenes]).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def train_vae(
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    kl_weight: float = 1e-6,
    block_out_channels: tuple[int, ...] = VAE_BLOCKS,
    latent_channels: int = LATENT_CHANNELS,
):
    """Train the small VAE on random renders; returns it with ``shift_factor``/``scaling_factor`` set.

    Returns:
        ``(vae, stats)`` with stats holding the final reconstruction MSE (in [-1, 1] units).
    """
    from diffusers import AutoencoderKL
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=MINI_SIZE,
        mid_block_add_attention=False,
    )
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    rng = random.Random(seed)
    bar = tqdm(range(steps), desc="vae")
    for _ in bar:
        x = _render_batch(_random_scenes(rng, batch_size))
        post = vae.encode(x).latent_dist
        z = post.sample()
        rec = vae.decode(z).sample
        mse = torch.nn.functional.mse_loss(rec, x)
        loss = mse + kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(mse=f"{mse.item():.5f}")
    vae.eval()
    with torch.no_grad():
        x = _render_batch(_random_scenes(random.Random(seed + 1), 256))
        z = vae.encode(x).latent_dist.mode()
        shift, scale = z.mean().item(), 1.0 / z.std().item()
        rec = vae.decode(z).sample
        final_mse = torch.nn.functional.mse_loss(rec, x).item()
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return vae, {"vae_mse": final_mse, "shift_factor": shift, "scaling_factor": scale}


#: Offsets (key position - query position) the mini T5's 4 heads look at: 1, 2 and 3 tokens back, 1 ahead.
T5_HEAD_OFFSETS = (-1, -2, -3, 1)
T5_OFFSET_BIAS = 20.0


def make_order_aware(t5) -> None:
    """Set a frozen random T5's relative-position bias so that each head reads one fixed neighbour.

    The Flux transformer gives every text token the same RoPE id (0, 0, 0), so word order reaches it only
    through the text encoder. A real T5 encodes order; a random one is nearly a bag of words (measured on the
    mini T5: moving "2" from "the shape of image 2" to "the pattern of image 2" changed its output by 3.5-5% of
    its norm), so "the shape of image 2 and the pattern of image 3" could not be told from its swap. With a bias of
    ``T5_OFFSET_BIAS`` on one relative-position bucket per head (the offsets in :data:`T5_HEAD_OFFSETS`; T5's
    buckets are exact for distances below 4) each head copies that neighbour, and two layers reach 6 tokens
    back: the token "3" then carries "colour of image". The weights stay a plain ``T5EncoderModel``.
    """
    attn = t5.encoder.block[0].layer[0].SelfAttention
    with torch.no_grad():
        attn.relative_attention_bias.weight.copy_(_t5_offset_bias(t5.config))


def _t5_offset_bias(t5_config) -> torch.Tensor:
    """The relative-position bias table :func:`make_order_aware` writes (buckets x heads)."""
    from transformers.models.t5.modeling_t5 import T5Attention

    if len(T5_HEAD_OFFSETS) != t5_config.num_heads:
        raise ValueError(f"T5_HEAD_OFFSETS has {len(T5_HEAD_OFFSETS)} offsets for {t5_config.num_heads} heads")
    buckets = T5Attention._relative_position_bucket(
        torch.tensor(T5_HEAD_OFFSETS), bidirectional=True, num_buckets=t5_config.relative_attention_num_buckets,
        max_distance=t5_config.relative_attention_max_distance,
    )  # fmt: skip
    table = torch.zeros(t5_config.relative_attention_num_buckets, t5_config.num_heads)
    table[buckets, torch.arange(t5_config.num_heads)] = T5_OFFSET_BIAS
    return table


def check_base(base: str | Path) -> None:
    """Raise ValueError when a saved base pipeline's T5 is not order-aware (built by an older recipe)."""
    import json

    from safetensors import safe_open
    from transformers import T5Config

    folder = Path(base) / "text_encoder_2"
    config = T5Config(**json.loads((folder / "config.json").read_text()))
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        bias = f.get_tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    if not torch.equal(bias.float(), _t5_offset_bias(config)):
        raise ValueError(
            f"{base} was built by an older recipe (its T5 is not order-aware, see make_order_aware); "
            "delete that folder (and the runs beside it) or use another --work folder"
        )


def build_base_pipeline(vae, folder: str | Path, seed: int = 0):
    """Assemble and save the untrained mini pipeline (trained VAE, random frozen text encoders)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from dreamomni2.pipeline import DreamOmni2Pipeline
    from dreamomni2.testing import tiny_clip_tokenizer

    clip_tok, t5_tok = tiny_clip_tokenizer(model_max_length=CLIP_TOKENS), mini_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=vae.config.latent_channels * 4, num_layers=2, num_single_layers=4,
        attention_head_dim=32, num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=[8, 12, 12],
    )  # fmt: skip
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=CLIP_TOKENS, projection_dim=32, bos_token_id=clip_tok.bos_token_id,
            eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id, hidden_act="gelu",
        )
    )  # fmt: skip
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
            relative_attention_num_buckets=16, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    )  # fmt: skip
    make_order_aware(t5)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=64,
        max_image_seq_len=4096,
    )  # fmt: skip
    pipe = DreamOmni2Pipeline(
        scheduler=scheduler, vae=vae, text_encoder=clip.eval(), tokenizer=clip_tok, text_encoder_2=t5.eval(),
        tokenizer_2=t5_tok, transformer=transformer,
    )  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def write_training_data(folder: str | Path, n: int, seed: int = 0, weights: dict[str, int] | None = None) -> Path:
    """``n`` training cases (seed < 1_000_000) as a manifest at 32 px, minus any case of the held-out mini suite.

    ``weights`` gives the group mix (see :func:`dreamomni2.mini.cases.make_cases`). Cases whose scenes equal a
    mini-suite case are dropped (logged), so no training draw, whatever its seed or mix, overlaps the bench.
    """
    from dreamomni2.bench.suites import case_key, mini_suite
    from dreamomni2.mini.cases import make_cases
    from dreamomni2.mini.manifest import write_cases

    if seed >= 1_000_000:
        raise ValueError("training seeds must be < 1_000_000 (larger ones are reserved for evaluation)")
    held_out = {case_key(c) for c in mini_suite()}
    cases = make_cases(seed, n, weights=weights)
    kept = [c for c in cases if case_key(c) not in held_out]
    if len(kept) < len(cases):
        logger.info("training data: dropped %d case(s) that are in the mini suite", len(cases) - len(kept))
    return write_cases(kept, folder, size=MINI_SIZE)


def train_config(
    base: str | Path,
    manifest: str | Path,
    out: str | Path,
    steps: int,
    id_policy: str = "dreamomni2",
    batch_size: int = BATCH_SIZE,
    lr: float = 2e-3,
    seed: int = 0,
    cache_dir: str | None = None,
    timestep_sampling: str = "shifted",
    shift: float = 3.0,
) -> dict:
    """The trainer job (a plain dict, the same shape as the YAML files in ``configs/``)."""
    return {
        "model": {"pretrained": str(base), "id_policy": id_policy},
        "data": {
            "manifest": str(manifest),
            "auto_resize": False,
            "max_area": MINI_SIZE**2,
            "max_sequence_length": TEXT_TOKENS,
        },  # fmt: skip
        "network": {"type": "full"},
        "train": {
            "output_dir": str(out),
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "lr_schedule": "cosine",
            "warmup_steps": min(100, steps // 10),
            "weight_decay": 0.01,
            "timestep_sampling": timestep_sampling,
            "shift": shift,
            "guidance": 3.5,
            "seed": seed,
            "checkpoint_every": 250,
            "keep_last": 1,
            "log_every": 25,
            "max_grad_norm": 1.0,
            "cache_dir": cache_dir,
        },  # fmt: skip
    }


@dataclass(frozen=True)
class Stage:
    """A continuation stage: ``steps`` more steps from the previous stage's weights, cosine from ``lr`` (a warm
    restart), on a draw of its own of ``cases`` cases mixed by ``mix`` (group weights, see
    :func:`dreamomni2.mini.cases.make_cases`; None trains on stage 1's data instead). Stage k draws with seed + k - 1.
    """

    steps: int
    lr: float = 1e-3
    cases: int = 16000
    mix: Mapping[str, int] | None = field(default_factory=lambda: dict(ABSTRACT_MIX))

    def __post_init__(self):
        if self.steps < 1 or self.cases < 1 or not self.lr > 0:
            raise ValueError(f"a stage wants steps >= 1, cases >= 1 and lr > 0, got {self}")
        if self.mix is not None:
            try:
                full = group_weights(self.mix)  # a group not named keeps weight 1, as in make_cases
            except ValueError:
                full = {}
            if not any(full.values()):
                raise ValueError(
                    f"a stage's mix wants integer weights >= 0 (not all 0) for {GROUP_NAMES}, got {dict(self.mix)}"
                )
            object.__setattr__(self, "mix", full)

    def tag(self) -> str:
        """The mix as ``1-3-1-5`` (in :data:`~dreamomni2.mini.groups.GROUP_NAMES` order), for folder names."""
        return "-".join(str(self.mix[g]) for g in GROUP_NAMES) if self.mix is not None else "same"

    @classmethod
    def parse(cls, text: str) -> Stage:
        """``STEPS[:LR[:MIX[:CASES]]]``, MIX being four comma-separated weights or ``same``: ``2000:1e-3:1,3,1,5``."""
        parts = text.split(":")
        try:
            if not 1 <= len(parts) <= 4:
                raise ValueError
            kw: dict = {"steps": int(parts[0])}
            if len(parts) > 1:
                kw["lr"] = float(parts[1])
            if len(parts) > 2:
                if parts[2] == "same":
                    kw["mix"] = None
                else:
                    weights = [int(w) for w in parts[2].split(",")]
                    if len(weights) != len(GROUP_NAMES):
                        raise ValueError
                    kw["mix"] = dict(zip(GROUP_NAMES, weights, strict=True))
            if len(parts) > 3:
                kw["cases"] = int(parts[3])
            return cls(**kw)
        except ValueError as err:
            detail = f" ({err})" if str(err) else ""
            raise ValueError(
                f"--stage wants STEPS[:LR[:MIX[:CASES]]] with MIX four integers separated by commas or "
                f"'same' (e.g. 2000:1e-3:1,3,1,5:16000), got {text!r}{detail}"
            ) from None


#: The shipped recipe's continuation after stage 1: fresh draws mixed towards the abstract groups.
CONTINUATION: tuple[Stage, ...] = (Stage(3000), Stage(2000), Stage(2000), Stage(2000))


def _train_processes(job: dict, run_dir: Path, workers: int) -> list[float]:
    """Run one trainer job as ``workers`` local CPU processes; returns the losses logged for its last 50 steps."""
    import json
    import os
    import subprocess

    import yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    job_file = run_dir / "job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    threads = max(1, torch.get_num_threads() // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}",
           "-m", "dreamomni2.cli", "train", str(job_file)]  # fmt: skip
    logger.info("training in %d processes of %d thread(s): %s", workers, threads, " ".join(cmd))
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the trainer processes for {run_dir} failed (exit {done.returncode}); see the log above")
    metrics = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    last = job["train"]["steps"] - 50
    return [row["loss"] for row in rows if "loss" in row and row["step"] > last]


def build_mini_model(
    work: str | Path,
    out: str | Path,
    steps: int = 5000,
    n_cases: int = 10000,
    vae_steps: int = 1500,
    id_policy: str = "dreamomni2",
    seed: int = 0,
    lr: float = 2e-3,
    stages: Sequence[Stage] = CONTINUATION,
    workers: int = 1,
) -> dict:
    """Run the whole recipe; the trained pipeline folder ends up in ``out``. Returns timings and stats.

    Stage 1 trains ``steps`` steps from the untrained base on ``n_cases`` cases of all four groups in turn (batch
    32, AdamW, cosine from ``lr`` after a 100-step warm-up, shifted-uniform noise levels with shift 3, so that sigma
    near 1 - where sampling starts and where the model must read the answer from the references - gets most of the
    draws). Each of ``stages`` (default :data:`CONTINUATION`; empty for stage 1 alone) then continues from the
    previous one on its own draw (:class:`Stage`). Stages are runs of the project's trainer; finished parts (base
    pipeline, data, stages) are reused when the recipe is run again in the same ``work`` folder.

    ``workers`` > 1 runs each stage as that many CPU processes (``torch.distributed.run``, gloo), the threads
    split between them: the trainer gives every process its rows of the same global batch, so the weights are
    those of one process (to float rounding). On this 2-core machine 2 one-thread processes train only a little
    faster (96-99 samples/s) than one two-thread process (90-96; docs/results.md).
    """
    work, out = Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    if workers < 1 or BATCH_SIZE % workers:
        raise ValueError(f"workers must be >= 1 and divide the batch of {BATCH_SIZE}, got {workers}")
    stats: dict = {"steps": steps, "lr": lr, "n_cases": n_cases, "id_policy": id_policy, "seed": seed,
                   "vae_steps": vae_steps, "workers": workers,
                   "stages": [{"steps": st.steps, "lr": st.lr, "cases": st.cases,
                               "mix": None if st.mix is None else dict(st.mix)} for st in stages]}  # fmt: skip
    t0 = time.perf_counter()
    base = work / "base"
    _prepare_base(base, vae_steps, seed, stats)
    manifest = _prepare_data(work, n_cases, seed, stats)
    plan = _plan_runs(work, manifest, steps, lr, id_policy, seed, stages, stats)
    start_from = base
    for k, run in enumerate(plan, 1):
        start_from = _train_run(k, len(plan), run, start_from, work, id_policy, seed, workers, stats)
    _export(out, start_from, plan, id_policy, stats, t0)
    return stats


#: One trainer run of the recipe: (steps, peak lr, run folder, training manifest).
_Run = tuple[int, float, Path, Path]


def _prepare_base(base: Path, vae_steps: int, seed: int, stats: dict) -> None:
    """Stage 0: train the VAE and save the untrained base pipeline (unless ``base`` has one), check it, and add the
    VAE's stats (``vae_mse``, ``shift_factor``, ``scaling_factor``, ``vae_seconds``) to ``stats``."""
    import json

    vae_stats = base / "vae_stats.json"
    if not (base / "model_index.json").is_file():
        t1 = time.perf_counter()
        vae, vstats = train_vae(steps=vae_steps, seed=seed)
        vstats["vae_seconds"] = time.perf_counter() - t1
        build_base_pipeline(vae, base, seed=seed)
        vae_stats.write_text(json.dumps(vstats, indent=2))
    check_base(base)
    if vae_stats.is_file():
        stats.update(json.loads(vae_stats.read_text()))


def _prepare_data(work: Path, n_cases: int, seed: int, stats: dict) -> Path:
    """Write stage 1's ``n_cases`` training cases to ``work/data`` (unless there) and return the manifest path."""
    manifest = work / "data" / "manifest.jsonl"
    if not manifest.is_file():
        t1 = time.perf_counter()
        write_training_data(work / "data", n_cases, seed=seed)
        stats["data_seconds"] = time.perf_counter() - t1
    return manifest


def _plan_runs(
    work: Path, manifest: Path, steps: int, lr: float, id_policy: str, seed: int, stages: Sequence[Stage], stats: dict
) -> list[_Run]:
    """Name every run's folder (each continuation's after the one it continues) and write each mixed stage's draw
    (seed + k - 1 for stage k, unless there); stage 1 and ``same`` stages train on ``manifest``."""
    plan: list[_Run] = [(steps, lr, work / f"run-{id_policy}-{steps}", manifest)]
    for k, stage in enumerate(stages, 2):
        run_dir, stage_manifest = f"{plan[-1][2]}-s{k}-{stage.steps}", manifest
        if stage.mix is not None:
            run_dir += f"-mix{stage.tag()}"
            stage_manifest = work / f"data-s{k}-{stage.cases}-mix{stage.tag()}" / "manifest.jsonl"
            if not stage_manifest.is_file():
                t1 = time.perf_counter()
                write_training_data(stage_manifest.parent, stage.cases, seed=seed + k - 1, weights=stage.mix)
                stats[f"stage{k}_data_seconds"] = time.perf_counter() - t1
        plan.append((stage.steps, stage.lr, Path(run_dir), stage_manifest))
    return plan


def _train_run(
    k: int, n_runs: int, run: _Run, start_from: Path, work: Path, id_policy: str, seed: int, workers: int, stats: dict
) -> Path:
    """Train run ``k`` of ``n_runs`` from ``start_from`` (unless its ``final`` folder is there) and return that folder.

    Raises:
        ValueError: the run folder records other settings (``stage.json``) than this run's.
    """
    import json

    from dreamomni2.train.config import load_config
    from dreamomni2.train.loop import Trainer

    n_steps, stage_lr, run_dir, stage_manifest = run
    final = run_dir / "final"
    settings = {"steps": n_steps, "lr": stage_lr, "data": stage_manifest.parent.name}
    record = run_dir / "stage.json"
    if record.is_file() and json.loads(record.read_text()) != settings:
        raise ValueError(f"{run_dir} was trained with {json.loads(record.read_text())}, not {settings}: "
                         "use another --work folder (or delete that run folder)")  # fmt: skip
    if not (final / "model_index.json").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(settings))
        logger.info("stage %d of %d: %d steps from %s", k, n_runs, n_steps, start_from)
        job = train_config(start_from, stage_manifest, run_dir, n_steps, id_policy, lr=stage_lr, seed=seed,
                           cache_dir=str(work / "cache"))  # fmt: skip
        t1 = time.perf_counter()
        if workers > 1:
            losses = _train_processes(job, run_dir, workers)
        else:
            losses = Trainer(load_config(base=job)).train().losses
        seconds = time.perf_counter() - t1
        stats[f"stage{k}_seconds"] = seconds
        stats[f"stage{k}_final_loss"] = float(np.mean(losses[-50:]))
        stats[f"stage{k}_samples_per_second"] = n_steps * job["train"]["batch_size"] / seconds
    return final


def _export(out: Path, final: Path, plan: Sequence[_Run], id_policy: str, stats: dict, t0: float) -> None:
    """Copy the last run's pipeline to ``out`` with every run's losses (``train_log.jsonl``, tagged by stage), the
    recipe's stats (``recipe_stats.json``) and the CLI defaults (``dreamomni2.json``)."""
    import json
    import shutil

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(final, out)
    with open(out / "train_log.jsonl", "w") as log:  # every stage's logged losses, tagged with the stage
        for k, (_, _, run_dir, _) in enumerate(plan, 1):
            metrics = run_dir / "metrics.jsonl"
            for line in metrics.read_text().splitlines() if metrics.is_file() else []:
                log.write(json.dumps({"stage": k, **json.loads(line)}) + "\n")
    stats["total_seconds"] = time.perf_counter() - t0
    (out / "recipe_stats.json").write_text(json.dumps(stats, indent=2))
    (out / "dreamomni2.json").write_text(json.dumps(MODEL_DEFAULTS | {"id_policy": id_policy}, indent=2))
    logger.info("mini model written to %s in %.0f s", out, stats["total_seconds"])


def main(argv: list[str] | None = None) -> int:
    """``python -m dreamomni2.mini.recipe`` — rebuild the shipped mini model (or an ablation variant)."""
    import argparse
    import json
    import os

    ap = argparse.ArgumentParser(prog="python -m dreamomni2.mini.recipe", description=main.__doc__)
    ap.add_argument("--work", default="runs/mini", help="scratch folder (data, base pipeline, checkpoints)")
    ap.add_argument("--out", default="src/dreamomni2/mini/model", help="where the trained pipeline goes")
    ap.add_argument("--steps", type=int, default=5000, help="stage 1's steps")
    ap.add_argument("--lr", type=float, default=2e-3, help="stage 1's peak learning rate")
    ap.add_argument("--cases", type=int, default=10000, help="stage 1's cases")
    ap.add_argument("--vae-steps", type=int, default=1500)
    default = " ".join(f"{st.steps}:{st.lr:g}:{st.tag().replace('-', ',')}:{st.cases}" for st in CONTINUATION)
    ap.add_argument("--stage", action="append", metavar="STEPS[:LR[:MIX[:CASES]]]",
                    help="a continuation stage after stage 1, repeatable, in order; MIX is the group weights "
                         f"{','.join(GROUP_NAMES)} or 'same' (stage 1's data); 'none' for stage 1 alone "
                         f"(default: {default})")  # fmt: skip
    ap.add_argument("--id-policy", default="dreamomni2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="trainer processes per stage (default: 2 where there are 2+ cores)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.workers < 1 or BATCH_SIZE % args.workers:
        ap.error(f"--workers wants an integer >= 1 that divides the batch of {BATCH_SIZE}, got {args.workers}")
    stages: tuple[Stage, ...] = CONTINUATION
    if args.stage:
        try:
            stages = () if args.stage == ["none"] else tuple(Stage.parse(text) for text in args.stage)
        except ValueError as err:
            ap.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        stats = build_mini_model(args.work, args.out, args.steps, args.cases, args.vae_steps, args.id_policy,
                                 args.seed, args.lr, stages, args.workers)  # fmt: skip
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
