"""Planner fine-tuning: LoRA supervised fine-tuning of the Qwen2.5-VL instruction planner.

``dreamomni2 train-planner CONFIG`` teaches the planner VLM to rewrite a free-form instruction
into the prompt the diffusion model was trained on. Each manifest row with a non-empty ``prompt``
is one example:

* input: the release's planner message, exactly as :class:`~dreamomni2.planner.qwen.QwenPlanner`
  builds it at inference (one user turn: the images in order, resized with the Kontext rule, then
  ``instruction + " It is editing task."`` / ``" It is generation task."``), chat-templated with
  ``add_generation_prompt=True``;
* target: the wrapped prompt (``<edit>…</edit>`` / ``<gen>…</gen>``, see
  :func:`dreamomni2.mini.planner.wrap_reply`) followed by the end-of-turn token ``<|im_end|>``, so that
  greedy decoding stops there and :func:`~dreamomni2.planner.base.parse_reply` recovers the prompt.

The loss is the next-token cross-entropy on the reply tokens only (every other label is ``-100``).
LoRA adapters (peft) go on the language model's attention projections by default; the vision tower
and everything else stay frozen. The paper fine-tuned the whole VLM at lr 1e-5; LoRA takes a larger lr.

Outputs under ``train.output_dir``: ``final/`` (the adapter, ``save_pretrained`` safetensors),
``step-XXXXXXXX/`` adapters every ``checkpoint_every`` steps (written atomically; no resume), and with
``train.merge: true`` a ``merged/`` full model folder (with the processor) that ``QwenPlanner`` loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dreamomni2.io import atomic_dir, atomic_write_text
from dreamomni2.tasks import MAX_IMAGES
from dreamomni2.train.config import ConfigError, load_job, raise_failed

__all__ = [
    "IGNORE_INDEX",
    "PlannerDataConfig",
    "PlannerExample",
    "PlannerLoraConfig",
    "PlannerModelConfig",
    "PlannerSFTConfig",
    "PlannerSFTResult",
    "PlannerTrainConfig",
    "add_planner_arguments",
    "build_sft_example",
    "collate_sft",
    "load_planner_config",
    "load_planner_examples",
    "planner_main",
    "reply_for",
    "reply_token_loss",
    "train_planner",
]

logger = logging.getLogger(__name__)

#: Label value that the loss ignores (PyTorch's cross-entropy default).
IGNORE_INDEX = -100

#: Qwen chat end-of-turn token; appended to every target reply.
END_OF_TURN = "<|im_end|>"


# --- configuration ----------------------------------------------------------------------------


@dataclass
class PlannerModelConfig:
    """The base VLM: a local Qwen2.5-VL folder (or a release folder holding ``vlm-model/``)."""

    path: str = ""
    dtype: str = "float32"  # float32 | bfloat16 | float16 (weights of the frozen model)


@dataclass
class PlannerDataConfig:
    """The manifest (rows with a ``prompt`` are planner examples) and how images are sized."""

    manifest: str = ""
    max_area: int | None = None  # pixel cap after the Kontext snap (None: the release's sizes); use it at inference too
    on_bad_row: str = "skip"  # or "stop"
    max_images: int = MAX_IMAGES


@dataclass
class PlannerLoraConfig:
    """LoRA on the language model's linear layers.

    ``targets`` are module-name suffixes matched under ``language_model`` only (the vision tower stays
    untouched), plus optionally ``lm_head``; e.g. add ``gate_proj``/``up_proj``/``down_proj`` for the MLPs.
    """

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class PlannerTrainConfig:
    """Optimisation and outputs."""

    output_dir: str = "runs/planner"
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4  # LoRA; the paper used 1e-5 for the full VLM
    lr_schedule: str = "constant"  # constant | cosine (to 0), after warmup_steps of linear warmup
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only the final adapter
    merge: bool = False  # also write output_dir/merged (full model + processor, loadable by QwenPlanner)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True  # tqdm bar


@dataclass
class PlannerSFTConfig:
    """A whole planner fine-tuning job (``configs/planner_tiny.yaml`` is an example)."""

    model: PlannerModelConfig = field(default_factory=PlannerModelConfig)
    data: PlannerDataConfig = field(default_factory=PlannerDataConfig)
    lora: PlannerLoraConfig = field(default_factory=PlannerLoraConfig)
    train: PlannerTrainConfig = field(default_factory=PlannerTrainConfig)

    def validate(self) -> PlannerSFTConfig:
        """Check values; raises :class:`ConfigError` naming the key."""
        checks = [
            (bool(self.model.path), "model.path is required"),
            (self.model.dtype in ("float32", "bfloat16", "float16"), "model.dtype: float32|bfloat16|float16"),
            (bool(self.data.manifest), "data.manifest is required"),
            (self.data.on_bad_row in ("skip", "stop"), "data.on_bad_row must be 'skip' or 'stop'"),
            (self.data.max_area is None or self.data.max_area > 0, "data.max_area must be > 0 (or null)"),
            (self.data.max_images > 0, "data.max_images must be > 0"),
            (self.lora.rank > 0, "lora.rank must be > 0"),
            (0.0 <= self.lora.dropout < 1.0, "lora.dropout must be in [0, 1)"),
            (bool(self.lora.targets), "lora.targets must not be empty"),
            (self.train.steps > 0, "train.steps must be > 0"),
            (self.train.batch_size > 0, "train.batch_size must be > 0"),
            (self.train.lr > 0, "train.lr must be > 0"),
            (self.train.lr_schedule in ("constant", "cosine"), "train.lr_schedule must be 'constant' or 'cosine'"),
            (self.train.warmup_steps >= 0, "train.warmup_steps must be >= 0"),
            (self.train.log_every >= 0, "train.log_every must be >= 0"),
            (self.train.checkpoint_every >= 0, "train.checkpoint_every must be >= 0"),
        ]
        raise_failed(checks)
        return self


def load_planner_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> PlannerSFTConfig:
    """Read a YAML planner job (or ``base``), apply ``key=value`` overrides, validate.

    The same loader as the diffusion trainer's :func:`~dreamomni2.train.config.load_config`
    (:func:`~dreamomni2.train.config.load_job`), for :class:`PlannerSFTConfig`.

    Args:
        path: YAML file (``None``: start from ``base``).
        overrides: ``section.key=value`` strings (values parsed as YAML).
        base: a mapping used when ``path`` is ``None``.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, unknown key (named), bad type or value.
    """
    return load_job(PlannerSFTConfig, path, overrides, base)


# --- examples and tokenisation ----------------------------------------------------------------


def reply_for(prompt: str, task: str) -> str:
    """The target reply for a canonical prompt: ``<edit>prompt</edit>`` or ``<gen>prompt</gen>``."""
    from dreamomni2.mini.planner import wrap_reply

    return wrap_reply(prompt, task)


def build_sft_example(processor: Any, images: Sequence[Any], instruction: str, task: str, reply: str) -> dict[str, Any]:
    """Tokenise one training example: the planner's user turn, then ``reply + <|im_end|>``.

    The user turn is built by :meth:`QwenPlanner.build_messages` and chat-templated with
    ``add_generation_prompt=True`` — the exact text the planner sees at inference — and processed
    together with ``images`` (image-pad expansion included). The reply is tokenised separately
    (no special tokens added, then the end-of-turn id), so the prompt tokens are exactly the
    inference ones and no token straddles the boundary.

    Args:
        processor: a Qwen2.5-VL processor (``apply_chat_template``, ``__call__``, ``tokenizer``).
        images: the (already Kontext-resized) PIL images, in order; may be empty.
        instruction: the user's instruction.
        task: ``"edit"`` or ``"generate"``.
        reply: the target reply without the end token (e.g. ``"<edit>…</edit>"``).

    Returns:
        ``input_ids``, ``attention_mask``, ``labels`` (1-D long tensors of one length; labels are
        ``-100`` except on the reply and end tokens), ``pixel_values`` and ``image_grid_thw``
        (``None`` without images), plus the processor's other per-token inputs extended over the reply
        (``mm_token_type_ids`` in transformers 5: without it the model falls back to 1-D positions in
        training while ``generate`` uses 3-D M-RoPE ones, and the fine-tune does not transfer).
    """
    import torch

    from dreamomni2.planner.qwen import QwenPlanner

    # build_messages uses no instance state; called unbound so no model folder is needed here
    messages = QwenPlanner.build_messages(None, images, instruction, task)  # type: ignore[arg-type]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=list(images) or None, return_tensors="pt")
    prompt_ids = inputs["input_ids"][0].long()
    tokenizer = processor.tokenizer
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_id is None or end_id == tokenizer.unk_token_id:
        raise ValueError(f"The tokenizer has no {END_OF_TURN} token.")
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [end_id]
    reply_t = torch.tensor(reply_ids, dtype=torch.long)
    input_ids = torch.cat([prompt_ids, reply_t])
    labels = torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), reply_t])
    pixel_values = inputs.get("pixel_values") if images else None
    grid = inputs.get("image_grid_thw") if images else None
    example: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "pixel_values": pixel_values,
        "image_grid_thw": grid,
    }
    # Other per-token inputs (transformers 5: ``mm_token_type_ids``, which the model needs to build the 3-D
    # M-RoPE positions that generate() uses): reply tokens are text, type 0.
    for key, value in inputs.items():
        if key in example or not torch.is_tensor(value) or tuple(value.shape) != (1, prompt_ids.shape[0]):
            continue
        example[key] = torch.cat([value[0], torch.zeros(len(reply_ids), dtype=value.dtype)])
    return example


def collate_sft(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad examples from :func:`build_sft_example` into one batch (pad labels are ``-100``).

    Args:
        examples: tokenised examples.
        pad_id: the tokenizer's pad id.

    Returns:
        Model inputs: ``input_ids``, ``attention_mask``, ``labels`` of shape ``(B, L)``, and
        ``pixel_values``/``image_grid_thw`` concatenated over the batch's images (when any).
    """
    import torch

    length = max(int(e["input_ids"].shape[0]) for e in examples)

    def pad(key: str, value: int) -> torch.Tensor:
        rows = []
        for e in examples:
            t = e[key]
            rows.append(torch.cat([t, torch.full((length - t.shape[0],), value, dtype=t.dtype)]))
        return torch.stack(rows)

    batch: dict[str, Any] = {
        "input_ids": pad("input_ids", pad_id),
        "attention_mask": pad("attention_mask", 0),
        "labels": pad("labels", IGNORE_INDEX),
    }
    for key in examples[0]:  # other per-token inputs (mm_token_type_ids), padded with 0
        if key not in batch and key not in ("pixel_values", "image_grid_thw") and examples[0][key] is not None:
            batch[key] = pad(key, 0)
    pixels = [e["pixel_values"] for e in examples if e.get("pixel_values") is not None]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
        batch["image_grid_thw"] = torch.cat(
            [e["image_grid_thw"] for e in examples if e.get("pixel_values") is not None]
        )
    return batch


@dataclass
class PlannerExample:
    """One planner training pair, from a manifest row (images already Kontext-resized)."""

    line: int
    task: str
    images: list[Any]
    instruction: str
    prompt: str

    @property
    def reply(self) -> str:
        """The wrapped target reply (without the end token)."""
        return reply_for(self.prompt, self.task)


def load_planner_examples(
    manifest: str | os.PathLike, max_area: int | None = None, on_bad_row: str = "skip", max_images: int = MAX_IMAGES
) -> list[PlannerExample]:
    """Planner examples from a manifest: rows with a non-empty ``prompt``, images loaded and resized.

    Args:
        manifest: JSONL manifest (see :mod:`dreamomni2.train.data`).
        max_area: pixel cap of the Kontext resize (as :func:`~dreamomni2.planner.base.prepare_planner_images`).
        on_bad_row: ``"skip"`` (log and drop) or ``"stop"`` (raise on the first bad row).
        max_images: most images per row.

    Returns:
        The examples in manifest order.

    Raises:
        ValueError: a bad row with ``on_bad_row="stop"``, or no row with a prompt.
    """
    from PIL import Image

    from dreamomni2.planner.base import prepare_planner_images
    from dreamomni2.train.data import read_manifest

    samples, problems = read_manifest(manifest, max_images=max_images)
    if problems:
        if on_bad_row == "stop":
            raise ValueError(f"{manifest}: bad row, {problems[0]}")
        for p in problems:
            logger.warning("%s: skipping bad row, %s", manifest, p)
    examples = []
    for s in samples:
        if not (s.prompt and s.prompt.strip()):
            continue
        loaded = []
        for path in s.images:
            with Image.open(path) as im:
                loaded.append(im.convert("RGB"))
        images = prepare_planner_images(loaded, max_area=max_area)
        examples.append(PlannerExample(s.line, s.task, images, s.instruction, s.prompt))
    skipped = len(samples) - len(examples)
    if skipped:
        logger.info("%s: %d rows without a prompt are not planner examples", manifest, skipped)
    if not examples:
        raise ValueError(f"{manifest}: no row has a 'prompt' (planner training needs instruction/prompt pairs)")
    return examples


# --- training ---------------------------------------------------------------------------------


@dataclass
class PlannerSFTResult:
    """What :func:`train_planner` did.

    Attributes:
        losses: training loss (mean over the batch's reply tokens) at every step.
        output: the final adapter folder (``output_dir/final``).
        merged: the merged model folder, when ``train.merge`` is set.
        steps: optimizer steps taken.
    """

    losses: list[float]
    output: Path
    merged: Path | None = None
    steps: int = 0


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _to(batch: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
    import torch

    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device)
            if k == "pixel_values":
                v = v.to(dtype)
        out[k] = v
    return out


def reply_token_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over the labelled (reply) tokens, next-token shifted, in float32.

    Args:
        model: a Qwen2.5-VL model (peft-wrapped or not).
        batch: :func:`collate_sft` output on the model's device.

    Returns:
        A scalar tensor.
    """
    import torch.nn.functional as F

    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _lora_regex(targets: Sequence[str]) -> str:
    """peft ``target_modules`` regex: the given module suffixes inside the language model only.

    ``lm_head`` (the output projection, outside the decoder stack) may be named too.
    """
    wanted = {t.strip().strip(".") for t in targets}
    names = "|".join(re.escape(t) for t in sorted(wanted - {"lm_head"}))
    parts = [rf".*language_model\..*\.(?:{names})"] if names else []
    if "lm_head" in wanted:
        parts.append(r"(?:.*\.)?lm_head")
    return "|".join(f"(?:{p})" for p in parts)


def _lr_lambda(t: PlannerTrainConfig) -> Any:
    """LR multiplier per step: linear warmup, then constant or cosine decay to 0 at ``t.steps``."""

    def factor(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / (t.warmup_steps + 1)
        if t.lr_schedule == "cosine":
            span = max(1, t.steps - t.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - t.warmup_steps) / span)))
        return 1.0

    return factor


def _save_adapter(model: Any, folder: Path) -> Path:
    """``save_pretrained`` (safetensors) into ``folder`` atomically (:func:`dreamomni2.io.atomic_dir`)."""
    with atomic_dir(folder) as tmp:
        # save_embedding_layers=False: with lm_head targeted, keep only its LoRA factors, not the full base matrix
        model.save_pretrained(os.fspath(tmp), safe_serialization=True, save_embedding_layers=False)
    return folder


def _tokenised_examples(
    cfg: PlannerSFTConfig, model_dir: Path | str, device: str, dtype: Any
) -> tuple[Any, list[dict[str, Any]], int]:
    """Load the manifest's planner examples and tokenise them with the model folder's processor.

    ``device`` and ``dtype`` are only logged.

    Returns:
        ``(processor, tokenised examples, pad id)``.
    """
    from transformers import AutoProcessor

    examples = load_planner_examples(cfg.data.manifest, cfg.data.max_area, cfg.data.on_bad_row, cfg.data.max_images)
    logger.info(
        "Planner SFT: %d examples from %s, model %s (%s, %s)",
        len(examples),
        cfg.data.manifest,
        model_dir,
        device,
        dtype,
    )
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    tokenised = [build_sft_example(processor, e.images, e.instruction, e.task, e.reply) for e in examples]
    pad_id = processor.tokenizer.pad_token_id
    return processor, tokenised, 0 if pad_id is None else int(pad_id)


def _lora_model(cfg: PlannerSFTConfig, model_dir: Path | str, device: str, dtype: Any) -> tuple[Any, list[Any]]:
    """The base VLM on ``device`` with LoRA adapters (seeded with ``train.seed``) and its trainable parameters.

    Raises:
        ConfigError: when ``lora.targets`` match no language-model module.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(cfg.train.seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=dtype, local_files_only=True, use_safetensors=True
    )
    model.to(device)
    lora = LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=_lora_regex(cfg.lora.targets),
        bias="none",
    )
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    if n_train == 0:
        raise ConfigError(f"lora.targets {cfg.lora.targets} match no language-model module")
    logger.info("LoRA: %d trainable parameters (rank %d, targets %s)", n_train, cfg.lora.rank, cfg.lora.targets)
    return model, params


def _batches(n_examples: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of example indices: a fresh permutation per epoch (from one ``random.Random(seed)``),
    taken from its end."""
    order_rng = random.Random(seed)
    queue: list[int] = []
    while True:
        picked = []
        for _ in range(batch_size):
            if not queue:
                queue = list(range(n_examples))
                order_rng.shuffle(queue)
            picked.append(queue.pop())
        yield picked


def _optimise(
    model: Any,
    params: list[Any],
    tokenised: list[dict[str, Any]],
    pad_id: int,
    t: PlannerTrainConfig,
    device: str,
    dtype: Any,
    out_dir: Path,
) -> list[float]:
    """The training loop: AdamW + LR schedule, grad clipping, logging and periodic adapter checkpoints.

    Returns:
        The loss of every step.

    Raises:
        FloatingPointError: on a non-finite loss (naming the step).
    """
    import torch
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(t))
    batches = _batches(len(tokenised), t.batch_size, t.seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=t.steps, desc="train-planner", disable=not t.progress, dynamic_ncols=True)
    for step in range(1, t.steps + 1):
        batch = _to(collate_sft([tokenised[i] for i in next(batches)], pad_id), device, dtype)
        loss = reply_token_loss(model, batch)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.item()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if t.log_every and step % t.log_every == 0:
            logger.info("step %d/%d loss %.4f", step, t.steps, losses[-1])
        if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.steps:
            _save_adapter(model, out_dir / f"step-{step:08d}")
    bar.close()
    model.eval()
    return losses


def _write_outputs(model: Any, processor: Any, cfg: PlannerSFTConfig, out_dir: Path) -> tuple[Path, Path | None]:
    """Write ``final/`` (adapter + processor), ``merged/`` when ``train.merge``, and ``planner_config.yaml``.

    Returns:
        ``(final adapter folder, merged folder or None)``.
    """
    final = _save_adapter(model, out_dir / "final")
    processor.save_pretrained(os.fspath(final))  # the adapter folder is self-describing for inference
    merged_dir = None
    if cfg.train.merge:
        merged_dir = out_dir / "merged"
        merged = model.merge_and_unload()
        with atomic_dir(merged_dir) as tmp:
            merged.save_pretrained(os.fspath(tmp), safe_serialization=True)
            processor.save_pretrained(os.fspath(tmp))
        logger.info("Wrote the merged planner to %s", merged_dir)
    atomic_write_text(out_dir / "planner_config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    return final, merged_dir


def train_planner(cfg: PlannerSFTConfig) -> PlannerSFTResult:
    """Fine-tune the planner VLM with LoRA on the manifest's instruction/prompt pairs.

    Deterministic for a seed on a given device: the LoRA init, dropout and the example order
    (a fresh seeded permutation per epoch) all come from ``train.seed``.

    Stages: tokenise the examples (:func:`_tokenised_examples`), load the VLM and add LoRA
    (:func:`_lora_model`), optimise (:func:`_optimise`), write the outputs (:func:`_write_outputs`).

    Args:
        cfg: the validated job config.

    Returns:
        A :class:`PlannerSFTResult` (per-step losses, adapter folder, merged folder).
    """
    from dreamomni2.planner.qwen import _resolve_dtype, resolve_model_dir

    cfg.validate()
    t = cfg.train
    device = _device(t.device)
    dtype = _resolve_dtype(cfg.model.dtype, device)
    model_dir = resolve_model_dir(cfg.model.path)
    out_dir = Path(t.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    processor, tokenised, pad_id = _tokenised_examples(cfg, model_dir, device, dtype)
    model, params = _lora_model(cfg, model_dir, device, dtype)
    losses = _optimise(model, params, tokenised, pad_id, t, device, dtype, out_dir)
    final, merged_dir = _write_outputs(model, processor, cfg, out_dir)
    logger.info("Planner SFT done: %d steps, loss %.4f -> %.4f; adapter %s", t.steps, losses[0], losses[-1], final)
    return PlannerSFTResult(losses=losses, output=final, merged=merged_dir, steps=t.steps)


# --- command line -----------------------------------------------------------------------------


def add_planner_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``train-planner``'s arguments: ``CONFIG``, ``--set KEY=VALUE`` (repeatable), ``--debug``."""
    parser.add_argument("config", help="YAML planner job (see configs/planner_tiny.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=100"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def planner_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 train-planner`` from parsed arguments.

    Config problems, a missing manifest or model folder print one line on stderr and return 2;
    other failures return 1 (re-raised with ``--debug``).

    Returns:
        The exit status.
    """
    import sys

    try:
        cfg = load_planner_config(args.config, args.set)
        if not Path(cfg.data.manifest).is_file():
            raise ConfigError(f"data.manifest {cfg.data.manifest}: no such file")
        from dreamomni2.planner.qwen import resolve_model_dir

        try:
            resolve_model_dir(cfg.model.path)
        except FileNotFoundError as e:
            raise ConfigError(f"model.path: {e}") from None
    except ConfigError as e:
        print(f"dreamomni2: error: {e}", file=sys.stderr)
        return 2
    try:
        result = train_planner(cfg)
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        print(f"dreamomni2: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    first, last = result.losses[0], result.losses[-1]
    where = f"{result.output}" + (f" and {result.merged}" if result.merged else "")
    print(f"trained the planner {result.steps} steps (loss {first:.4f} -> {last:.4f}); wrote {where}")
    return 0
