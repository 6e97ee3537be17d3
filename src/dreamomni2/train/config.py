"""Training job configuration: YAML into dataclasses, unknown keys rejected by name.

One YAML file describes a whole job (model, data, network, train, validation sections;
the layout follows ostris/ai-toolkit's job files). ``--set section.key=value`` overrides.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dreamomni2.tasks import MAX_IMAGES

__all__ = [
    "ConfigError",
    "DataConfig",
    "JobConfig",
    "ModelConfig",
    "NetworkConfig",
    "TrainConfig",
    "ValidationCase",
    "ValidationConfig",
    "apply_overrides",
    "raise_failed",
    "from_dict",
    "load_config",
    "load_job",
    "read_job_file",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A malformed configuration; the message names the offending key."""


@dataclass
class ModelConfig:
    """Where the base pipeline comes from."""

    pretrained: str | None = None  # diffusers folder (FLUX.1-Kontext layout)
    tiny: dict[str, Any] | None = None  # or: tiny random components (kwargs of build_tiny_components)
    dtype: str = "float32"  # weights dtype of the frozen parts
    id_policy: str = "dreamomni2"


@dataclass
class DataConfig:
    """The manifest and how its images and texts become model inputs (sizes as the pipeline's)."""

    manifest: str = ""
    max_area: int = 1024**2  # target pixel area (the pipeline's max_area)
    reference_max_area: int | None = None  # cap on each reference after snapping
    auto_resize: bool = True
    max_images: int = MAX_IMAGES
    on_bad_row: str = "skip"  # or "stop"
    shuffle_references: bool = False  # permute references (not an edit's source), renumbering the text
    max_sequence_length: int = 512
    allowed_roots: list[str] = field(default_factory=list)  # folders outside the manifest's that rows may name
    use_prompt: bool = True  # train on the planned "prompt" column when present, else the instruction


@dataclass
class NetworkConfig:
    """What is trained: LoRA adapters on the named transformer modules, or the full transformer."""

    type: str = "lora"  # or "full"
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    # attention projections of both block kinds (double- and single-stream) by default
    targets: list[str] = field(
        default_factory=lambda: [
            "to_q",
            "to_k",
            "to_v",
            "to_out.0",
            "add_q_proj",
            "add_k_proj",
            "add_v_proj",
            "to_add_out",
        ]
    )


@dataclass
class TrainConfig:
    """Optimisation, timestep sampling, precision, caching, checkpoints and logging."""

    output_dir: str = "runs/train"
    steps: int = 1000
    batch_size: int = 1  # global batch per optimizer micro-step, across processes
    grad_accum: int = 1
    lr: float = 1e-4
    lr_schedule: str = "constant"  # constant | linear | cosine (with warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    optimizer: str = "adamw"  # or "adamw8bit" (bitsandbytes)
    max_grad_norm: float = 1.0
    seed: int = 0
    timestep_sampling: str = "logit_normal"  # uniform | logit_normal | shifted
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 3.0
    guidance: float = 3.5
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False
    cache: bool = True
    cache_dir: str | None = None  # default: <output_dir>/cache
    checkpoint_every: int = 0
    keep_last: int = 2
    resume: str | None = "auto"  # auto | a checkpoint folder | null
    log_every: int = 10


@dataclass
class ValidationCase:
    """One fixed validation request (images, prompt, task, optional output size)."""

    images: list[str] = field(default_factory=list)
    prompt: str = ""
    task: str = "edit"
    width: int | None = None
    height: int | None = None


@dataclass
class ValidationConfig:
    """Sample the validation cases every ``every`` steps (0: never) with ``steps`` denoising steps."""

    every: int = 0
    steps: int = 8
    seed: int = 0
    cases: list[ValidationCase] = field(default_factory=list)


@dataclass
class JobConfig:
    """A whole training job, one section per dataclass (``configs/*.yaml`` are examples)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def validate(self) -> JobConfig:
        """Check values across sections; raises :class:`ConfigError` naming the key. Returns ``self``."""
        from dreamomni2.ids import get_policy

        checks = [
            (self.model.pretrained or self.model.tiny is not None, "model.pretrained (or model.tiny) is required"),
            (bool(self.data.manifest), "data.manifest is required"),
            (self.data.on_bad_row in ("skip", "stop"), "data.on_bad_row must be 'skip' or 'stop'"),
            (self.network.type in ("lora", "full"), "network.type must be 'lora' or 'full'"),
            (self.train.steps > 0, "train.steps must be > 0"),
            (self.train.batch_size > 0, "train.batch_size must be > 0"),
            (self.train.grad_accum > 0, "train.grad_accum must be > 0"),
            (self.train.lr_schedule in ("constant", "linear", "cosine"), "train.lr_schedule: constant|linear|cosine"),
            (self.train.optimizer in ("adamw", "adamw8bit"), "train.optimizer must be 'adamw' or 'adamw8bit'"),
            (
                self.train.timestep_sampling in ("uniform", "logit_normal", "shifted"),
                "train.timestep_sampling: uniform|logit_normal|shifted",
            ),
            (self.train.mixed_precision in ("no", "bf16", "fp16"), "train.mixed_precision: no|bf16|fp16"),
            (len(self.train.adam_betas) == 2, "train.adam_betas needs two values"),
        ]
        raise_failed(checks + self._range_checks())
        try:
            get_policy(self.model.id_policy)
        except ValueError as e:
            raise ConfigError(f"model.id_policy: {e}") from None
        return self

    def _range_checks(self) -> list[tuple[bool, str]]:
        """Numeric ranges: positive rates and areas, at least one checkpoint kept, finite values."""
        import math

        t, d = self.train, self.data
        finite = all(math.isfinite(v) for v in (t.lr, t.weight_decay, t.adam_eps, t.max_grad_norm, t.guidance))
        return [
            (finite, "train: lr, weight_decay, adam_eps, max_grad_norm and guidance must be finite numbers"),
            (t.lr > 0, f"train.lr must be > 0, got {t.lr}"),
            (
                self.model.dtype in ("float32", "bfloat16", "float16", "auto"),
                f"model.dtype must be float32, bfloat16 or float16, got {self.model.dtype!r}",
            ),
            (t.keep_last >= 1, f"train.keep_last must be >= 1 (0 would delete every checkpoint), got {t.keep_last}"),
            (t.checkpoint_every >= 0, f"train.checkpoint_every must be >= 0, got {t.checkpoint_every}"),
            (t.warmup_steps >= 0 and t.weight_decay >= 0, "train.warmup_steps and train.weight_decay must be >= 0"),
            (t.log_every > 0, f"train.log_every must be > 0, got {t.log_every}"),
            (d.max_area > 0, f"data.max_area must be > 0, got {d.max_area}"),
            (d.reference_max_area is None or d.reference_max_area > 0, "data.reference_max_area must be > 0"),
            (0 < d.max_images <= MAX_IMAGES, f"data.max_images must be between 1 and {MAX_IMAGES}"),
            (self.network.rank > 0 and 0 <= self.network.dropout < 1, "network.rank must be > 0, dropout in [0, 1)"),
            (self.validation.every >= 0 and self.validation.steps > 0, "validation.every >= 0, validation.steps > 0"),
        ]


def raise_failed(checks: list[tuple[Any, str]]) -> None:
    """Raise :class:`ConfigError` with the message of the first ``(ok, message)`` pair that is falsy."""
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {tp}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp in (str, float) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys raise :class:`ConfigError` naming them."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def read_job_file(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> dict:
    """The raw mapping of a YAML job file (or a copy of ``base``), with ``--set`` overrides applied.

    Args:
        path: YAML file (``None``: start from ``base``).
        overrides: ``section.key=value`` strings (values parsed as YAML).
        base: a mapping used when ``path`` is ``None`` (deep-copied, never modified).

    Returns:
        The nested mapping, not yet checked against any dataclass.

    Raises:
        ConfigError: missing file, invalid YAML or a top level that is not a mapping (naming the file), or
            a bad override (naming the key).
    """
    data: dict = copy.deepcopy(dict(base or {}))
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of sections, got {type(data).__name__}")
    return apply_overrides(data, overrides or [])


def load_job(
    cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> T:
    """Read a job (:func:`read_job_file`), build dataclass ``cls`` from it (:func:`from_dict`) and validate it.

    Args:
        cls: the job dataclass (:class:`JobConfig`, ``PlannerSFTConfig`` ...); its ``validate()`` is called when
            it has one and must return the config.
        path, overrides, base: as in :func:`read_job_file`.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, unknown key (named), bad type or value.
    """
    cfg = from_dict(cls, read_job_file(path, overrides, base))
    validate = getattr(cfg, "validate", None)
    return validate() if callable(validate) else cfg


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> JobConfig:
    """Read a YAML job file (or ``base``), apply overrides, validate.

    Relative paths in ``data.manifest`` and ``model.pretrained`` stay as written (relative to the
    working directory), like every other CLI path.
    """
    return load_job(JobConfig, path, overrides, base)
