"""The trainer: multi-reference flow-matching fine-tuning (LoRA or full) on accelerate.

Scale-out uses accelerate (DDP, FSDP, DeepSpeed via ``accelerate launch``). Each optimizer
micro-step takes one *global* batch from a size bucket; every process draws the noise and
noise levels of the whole global batch from the same generator and keeps its own rows, so a
run on N processes computes exactly what one process computes with the full batch.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dreamomni2.train.cache import TensorCache
from dreamomni2.train.checkpoint import complete_checkpoints, load_checkpoint, save_checkpoint
from dreamomni2.train.config import JobConfig
from dreamomni2.train.data import Sample, bucket_batches, read_manifest, renumber_images
from dreamomni2.train.encode import EncodedSample, SampleEncoder
from dreamomni2.train.loss import flow_matching_loss, sample_sigmas

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "Trainer", "train"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainResult:
    output: Path  # final LoRA folder (lora) or pipeline folder (full)
    steps: int
    losses: list[float] = field(default_factory=list)  # per optimizer step, global mean
    skipped_rows: int = 0
    samples_per_second: float = 0.0


class Trainer:
    """Runs a :class:`~dreamomni2.train.config.JobConfig`. Build, then :meth:`train`."""

    def __init__(self, cfg: JobConfig, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg
        t = cfg.train
        self.acc = accelerator or Accelerator(
            gradient_accumulation_steps=t.grad_accum,
            mixed_precision=t.mixed_precision,
            cpu=not torch.cuda.is_available(),
        )
        if t.batch_size % self.acc.num_processes:
            raise ValueError(f"train.batch_size={t.batch_size} must divide over {self.acc.num_processes} processes")
        self.out = Path(t.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self._load_data()
        self._load_model()
        self._build_optimizer()

    # setup -----------------------------------------------------------------
    def _load_data(self) -> None:
        d = self.cfg.data
        self.samples, problems = read_manifest(
            d.manifest, max_images=d.max_images, allowed_roots=tuple(d.allowed_roots)
        )
        self.skipped = len(problems)
        if problems:
            listing = "; ".join(str(p) for p in problems[:5]) + (" ..." if len(problems) > 5 else "")
            if d.on_bad_row == "stop":
                raise ValueError(f"{d.manifest}: {len(problems)} bad rows: {listing}")
            logger.warning("%s: skipping %d bad rows: %s", d.manifest, len(problems), listing)
        if not self.samples:
            raise ValueError(f"{d.manifest}: no usable rows")

    def _load_model(self) -> None:
        from dreamomni2.pipeline import DreamOmni2Pipeline

        m, t = self.cfg.model, self.cfg.train
        dtype = _DTYPES[m.dtype]
        if m.pretrained:
            pipe = DreamOmni2Pipeline.from_pretrained(m.pretrained, dtype=dtype, local_files_only=True)
        else:
            from dreamomni2.testing import build_tiny_pipeline

            pipe = build_tiny_pipeline(**(m.tiny or {})).to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        device = self.acc.device
        for name in ("vae", "text_encoder", "text_encoder_2"):
            getattr(pipe, name).requires_grad_(False).to(device)
        tr = pipe.transformer.to(device)
        tr.requires_grad_(False)
        torch.manual_seed(t.seed)  # the adapter's initial weights depend on the seed only
        if self.cfg.network.type == "lora":
            from peft import LoraConfig

            n = self.cfg.network
            tr.add_adapter(
                LoraConfig(r=n.rank, lora_alpha=n.alpha, lora_dropout=n.dropout, target_modules=n.targets,
                           init_lora_weights="gaussian")
            )  # fmt: skip
            for p in tr.parameters():
                if p.requires_grad:
                    p.data = p.data.float()  # LoRA weights train in fp32
        else:
            tr.requires_grad_(True)
        if t.gradient_checkpointing:
            tr.enable_gradient_checkpointing()
        tr.train()
        self.pipe = pipe
        self.trainable = {n: p for n, p in tr.named_parameters() if p.requires_grad}
        if not self.trainable:
            raise ValueError("nothing to train: network.targets matched no module")
        cache = None
        if t.cache:
            cache = TensorCache(t.cache_dir or self.out / "cache")
        self.encoder = SampleEncoder(pipe, self.cfg.data, cache, dtype=dtype)
        self.keys = [self.encoder.bucket_key(s) for s in self.samples]

    def _build_optimizer(self) -> None:
        from diffusers.optimization import get_scheduler

        t = self.cfg.train
        params = list(self.trainable.values())
        if t.optimizer == "adamw8bit":
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise ValueError("train.optimizer=adamw8bit needs bitsandbytes (pip install bitsandbytes)") from None
            opt_cls = bnb.optim.AdamW8bit
        else:
            opt_cls = torch.optim.AdamW
        opt = opt_cls(params, lr=t.lr, betas=tuple(t.adam_betas), eps=t.adam_eps, weight_decay=t.weight_decay)
        name = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[t.lr_schedule]
        sched = get_scheduler(name, opt, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps)
        # The scheduler is not handed to accelerate: its wrapper steps the schedule once per *process* each step
        # (it assumes each process's batch is a share of a larger global batch), so N processes ran an N-times
        # faster schedule - a cosine ended at step steps/N and rose again. Here the global batch is fixed, so the
        # schedule steps once per optimizer step, on every process alike.
        self.model, self.optimizer = self.acc.prepare(self.pipe.transformer, opt)
        self.scheduler = sched
        self.noise_gen = torch.Generator().manual_seed(t.seed)

    # data ------------------------------------------------------------------
    def _order(self, sample: Sample, epoch: int, index: int) -> tuple[list[int], str]:
        """Reference order (edit keeps its source first) and the instruction renumbered to match."""
        text = sample.text(self.cfg.data.use_prompt)
        n = len(sample.images)
        if not self.cfg.data.shuffle_references or n < 2:
            return list(range(n)), text
        rng = random.Random(f"{self.cfg.train.seed}/{epoch}/{index}")
        head = [0] if sample.task == "edit" else []
        rest = [i for i in range(n) if i not in head]
        rng.shuffle(rest)
        order = head + rest
        mapping = {old + 1: new + 1 for new, old in enumerate(order)}
        return order, renumber_images(text, mapping)

    def _collate(self, items: list[EncodedSample]) -> dict:
        return {
            "target": torch.cat([e.target for e in items]),
            "refs": [torch.cat([e.references[i] for e in items]) for i in range(len(items[0].references))],
            "embeds": torch.cat([e.prompt_embeds for e in items]),
            "pooled": torch.cat([e.pooled for e in items]),
        }

    def _batches(self, epoch: int, start: int):
        batches = list(bucket_batches(self.keys, self.cfg.train.batch_size, self.cfg.train.seed, epoch))
        for b in range(start, len(batches)):
            yield b, len(batches), batches[b]

    def _micro_step(self, epoch: int, batch: list[int]) -> torch.Tensor:
        t, acc = self.cfg.train, self.acc
        local = t.batch_size // acc.num_processes
        lo = acc.process_index * local
        enc = []
        for i in batch[lo : lo + local]:
            order, text = self._order(self.samples[i], epoch, i)
            enc.append(self.encoder.encode(self.samples[i], text, order, device=acc.device))
        data = self._collate(enc)
        c, h, w = data["target"].shape[1:]
        # the whole global batch's noise and sigmas, then this process's rows
        noise = torch.randn((t.batch_size, (h // 2) * (w // 2), c * 4), generator=self.noise_gen)
        sigmas = sample_sigmas(t.batch_size, self.noise_gen, t.timestep_sampling, t.logit_mean, t.logit_std, t.shift)
        noise, sigmas = noise[lo : lo + local].to(acc.device), sigmas[lo : lo + local].to(acc.device)
        guidance = t.guidance if self.pipe.transformer.config.guidance_embeds else None
        return flow_matching_loss(
            self.model, data["target"], data["refs"], data["embeds"], data["pooled"], noise, sigmas, guidance,
            self.cfg.model.id_policy,
        )  # fmt: skip

    @torch.no_grad()
    def evaluate(self, sigmas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0), seed: int = 1234) -> float:
        """Mean loss over every sample at fixed noise levels and fixed noise (a deterministic yardstick)."""
        gen = torch.Generator().manual_seed(seed)
        model = self.acc.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        guidance = self.cfg.train.guidance if self.pipe.transformer.config.guidance_embeds else None
        for sample in self.samples:
            e = self.encoder.encode(sample, sample.text(self.cfg.data.use_prompt), device=self.acc.device)
            c, h, w = e.target.shape[1:]
            for s in sigmas:
                noise = torch.randn((1, (h // 2) * (w // 2), c * 4), generator=gen).to(self.acc.device)
                sig = torch.full((1,), s, device=self.acc.device)
                loss = flow_matching_loss(
                    model, e.target, e.references, e.prompt_embeds, e.pooled, noise, sig, guidance,
                    self.cfg.model.id_policy,
                )  # fmt: skip
                total, count = total + loss.item(), count + 1
        model.train(was_training)
        return total / count

    # checkpoints -------------------------------------------------------------
    def _resume(self) -> tuple[int, int, int]:
        """Restore the named checkpoint, or (``auto``) the newest intact one, falling back past damaged ones."""
        r = self.cfg.train.resume
        if r == "auto":
            candidates = list(reversed(complete_checkpoints(self.out / "checkpoints")))
        elif r:
            candidates = [Path(r)]
            if not (candidates[0] / "state.json").is_file():
                raise ValueError(f"train.resume: {r} is not a complete checkpoint")
        else:
            candidates = []
        for k, ckpt in enumerate(candidates):
            try:
                st = load_checkpoint(ckpt, self.trainable, self.optimizer, self.scheduler, {"noise": self.noise_gen})
            except Exception as e:  # a damaged file: safetensors/JSON errors of many kinds
                if r != "auto" or k == len(candidates) - 1:
                    raise ValueError(f"train.resume: checkpoint {ckpt} is damaged ({type(e).__name__}: {e})") from e
                logger.warning("checkpoint %s is damaged (%s); trying the previous one", ckpt, e)
                continue
            logger.warning("resumed from %s (step %d)", ckpt, st["step"]) if k else logger.info(
                "resumed from %s (step %d)", ckpt, st["step"])  # fmt: skip
            return st["step"], st["position"]["epoch"], st["position"]["batch"]
        return 0, 0, 0

    def _save(self, step: int, epoch: int, batch: int) -> None:
        if self.acc.is_main_process:
            save_checkpoint(
                self.out / "checkpoints", step, self.trainable, self.optimizer, self.scheduler,
                {"noise": self.noise_gen}, {"epoch": epoch, "batch": batch}, self.cfg.train.keep_last,
            )  # fmt: skip
            _fault_point(step)
        self.acc.wait_for_everyone()

    def _writer(self):
        """A TensorBoard writer when ``tensorboard`` is installed (rank 0), else ``None``."""
        if not hasattr(self, "_tb"):
            self._tb = None
            if self.acc.is_main_process:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.out / "tensorboard"))
                except ImportError:
                    logger.info("tensorboard is not installed; metrics go to metrics.jsonl only")
        return self._tb

    def _log(self, record: dict) -> None:
        if self.acc.is_main_process:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            tb = self._writer()
            if tb is not None:
                for k, v in record.items():
                    if k != "step" and isinstance(v, (int, float)):
                        tb.add_scalar(f"train/{k}", v, record["step"])

    # main loop ---------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run to ``train.steps`` optimizer steps (resuming when a checkpoint exists)."""
        t, acc = self.cfg.train, self.acc
        step, epoch, pos = self._resume()
        losses: list[float] = []
        bar = tqdm(total=t.steps, initial=step, desc="train", disable=not acc.is_main_process, dynamic_ncols=True)
        start, seen = time.perf_counter(), 0
        while step < t.steps:
            for b, n_batches, batch in self._batches(epoch, pos):
                with acc.accumulate(self.model):
                    loss = self._micro_step(epoch, batch)
                    acc.backward(loss)
                    if acc.sync_gradients and t.max_grad_norm > 0:
                        acc.clip_grad_norm_(list(self.trainable.values()), t.max_grad_norm)
                    self.optimizer.step()
                    skipped = getattr(self.optimizer, "step_was_skipped", False)  # fp16 overflow: no step
                    if acc.sync_gradients and not skipped:  # one schedule step per optimizer step (_build_optimizer)
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                seen += t.batch_size
                losses.append(acc.reduce(loss.detach(), reduction="mean").item())
                pos = b + 1
                if pos == n_batches:
                    epoch, pos = epoch + 1, 0
                if not acc.sync_gradients:
                    continue
                step += 1
                step_loss = sum(losses[-t.grad_accum :]) / t.grad_accum
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", samples_s=f"{rate:.1f}")
                if step % max(t.log_every, 1) == 0 or step == t.steps:
                    self._log({"step": step, "loss": step_loss, "lr": self.scheduler.get_last_lr()[0]})
                if t.checkpoint_every and step % t.checkpoint_every == 0 and step < t.steps:
                    self._save(step, epoch, pos)
                if self.cfg.validation.every and step % self.cfg.validation.every == 0:
                    self.validate(step)
                if step >= t.steps:
                    break
            else:
                continue
            break
        bar.close()
        per_step = [sum(losses[i : i + t.grad_accum]) / t.grad_accum for i in range(0, len(losses), t.grad_accum)]
        out = self.save_final()
        rate = seen / max(time.perf_counter() - start, 1e-9)
        return TrainResult(out, step, per_step, self.skipped, rate)

    # outputs -----------------------------------------------------------------
    def _pipeline_for_inference(self):
        from dreamomni2.pipeline import DreamOmni2Pipeline

        comps = dict(self.pipe.components)
        comps["transformer"] = self.acc.unwrap_model(self.model)
        pipe = DreamOmni2Pipeline(**comps)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @torch.no_grad()
    def validate(self, step: int) -> list:
        """Sample the configured validation cases through the real pipeline; images to ``validation/``."""
        if not self.acc.is_main_process or not self.cfg.validation.cases:
            return []
        from dreamomni2.images import load_image, save_image
        from dreamomni2.request import Request
        from dreamomni2.session import Session

        v, model = self.cfg.validation, self.acc.unwrap_model(self.model)
        model.eval()
        session = Session.from_pipeline(self._pipeline_for_inference(), planner="none")
        folder = self.out / "validation" / f"step-{step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for k, case in enumerate(v.cases):
            d = self.cfg.data
            size = None if case.width is None and case.height is None else (case.width, case.height)
            out = session.run(Request(
                case.task, [load_image(p) for p in case.images], case.prompt, prompt=case.prompt, steps=v.steps,
                seed=v.seed, size=size, id_policy=self.cfg.model.id_policy, pipeline_kwargs=dict(
                    max_area=d.max_area, reference_max_area=d.reference_max_area, _auto_resize=d.auto_resize),
            )).image  # fmt: skip
            save_image(out, folder / f"case-{k}.png")
            images.append(out)
            tb = self._writer()
            if tb is not None:
                import numpy as np

                tb.add_image(f"validation/case-{k}", np.asarray(out), step, dataformats="HWC")
        model.train()
        self._log({"step": step, "validation": str(folder)})
        return images

    def save_final(self) -> Path:
        """LoRA: ``final/pytorch_lora_weights.safetensors`` (diffusers format); full: a pipeline folder."""
        from dreamomni2.io import atomic_dir
        from dreamomni2.pipeline import DreamOmni2Pipeline

        final = self.out / "final"
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            with atomic_dir(final) as tmp:  # a crash mid-save never leaves half a final/
                if self.cfg.network.type == "lora":
                    from peft.utils import get_peft_model_state_dict

                    DreamOmni2Pipeline.save_lora_weights(tmp, transformer_lora_layers=get_peft_model_state_dict(model))
                else:
                    self._pipeline_for_inference().save_pretrained(tmp, safe_serialization=True)
        self.acc.wait_for_everyone()
        return final


#: Fault injection for tests: the process SIGKILLs itself right after writing this step's checkpoint, so a
#: kill-and-resume test kills at a known step whatever the machine's load (never set it otherwise).
FAULT_KILL_ENV = "DREAMOMNI2_FAULT_KILL_AFTER_CHECKPOINT"


def _fault_point(step: int) -> None:
    import os
    import signal

    if os.environ.get(FAULT_KILL_ENV) == str(step):
        logger.warning("%s=%d: killing this process (fault test)", FAULT_KILL_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)


def train(cfg: JobConfig) -> TrainResult:
    """Build a :class:`Trainer` and run it."""
    return Trainer(cfg).train()
