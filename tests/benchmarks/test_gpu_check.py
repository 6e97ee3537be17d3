"""``benchmarks/gpu_check.py``: the FLOP model, the card table, the budget, and the whole check with ``--tiny``."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_token_counts_and_flops_at_full_size(gc):
    assert gc.token_counts(gc.FULL, 2) == {"target": 4096, "references": 8192, "text": 512}
    flops = gc.flops_per_step(gc.FULL, 2)
    # 12800 tokens through 57 blocks of 12 d^2 weights each (a double block's streams see their own tokens; d = 3072)
    # at 2 FLOPs per weight, 1.65e14, plus attention 4 T^2 d x 57 blocks, 1.15e14
    assert flops == pytest.approx(2 * 12800 * 57 * 12 * 3072**2 + 4 * 12800**2 * 3072 * 57)
    assert 2.7e14 < flops < 2.9e14
    assert gc.flops_per_step(gc.FULL, 3) > flops > gc.flops_per_step(gc.FULL, 1)
    assert gc.flops_per_step(gc.FULL, 2, batch=2) == 2 * flops


def test_card_table(gc):
    assert gc.peak_tflops("NVIDIA H200") == 989.0
    assert gc.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gc.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gc.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gc.peak_tflops("NVIDIA L40S") == 362.0
    assert gc.peak_tflops("NVIDIA GeForce RTX 4090") == 165.0
    assert gc.peak_tflops("Some Future Card") is None


def test_budget_skips_and_records(gc):
    budget = gc.Budget(10.0)
    assert budget.fits("a", 5.0)
    assert not budget.fits("b", 60.0)
    assert budget.skipped == [{"name": "b", "why": "needs ~60s, 10s left of the budget"}]


def test_cuda_only_quantizers_are_skipped_with_the_reason(gc, tmp_path):
    from dreamomni2.testing import save_tiny_pipeline

    folder = Path(save_tiny_pipeline(tmp_path / "m"))
    check = gc.Check(gc.TINY, folder, tmp_path, "cpu", gc.Budget(100.0), tiny=True)
    assert gc._run_config(check, "full", "nf4", 2, (2,)) is None
    assert check.budget.skipped == [{"name": "full/nf4", "why": "--quantize nf4: bitsandbytes 4-bit NF4 runs on cuda "
                                                                 "only, not on cpu"}]  # fmt: skip


def test_tiny_run_writes_sane_json_and_markdown(gc, tmp_path):
    assert gc.main(["--tiny", "--out", str(tmp_path), "--budget-s", "10"]) == 0
    r = json.loads((tmp_path / "gpu_check.json").read_text())
    assert r["card"] == "CPU" and r["tiny"] is True and r["peak_bf16_tflops"] is None and r["budget_s"] == 10.0
    assert r["size"] == 64 and r["steps"] == 4 and 0 < r["build_s"] <= r["elapsed_s"]
    assert r["runs"], "the first measurement (full mode, 2 images) always fits a 10 s budget"
    first = r["runs"][0]
    assert (first["memory"], first["quantize"], first["images"], first["extrapolated"]) == ("full", "none", 2, False)
    assert first["tokens"] == {"target": 16, "references": 32, "text": 16}
    for run in r["runs"]:
        assert run["memory"] in gc.MEMORY_MODES and run["images"] in gc.REFS
        assert math.isfinite(run["s_per_image"]) and run["s_per_image"] > 0 and run["s_per_step"] > 0
        assert run["s_per_step"] * run["steps_run"] <= run["s_per_image"] * 1.5
        assert run["flops_per_step"] == gc.flops_per_step(gc.TINY, run["images"])
        assert run["peak_gib"] is None and run["ratio_to_floor"] is None  # no peak memory or card peak on a CPU
    if r["train"] is not None:
        assert r["train"]["images"] == 2 and r["train"]["gradient_checkpointing"] and math.isfinite(r["train"]["loss"])
    for skipped in r["skipped"]:
        assert set(skipped) == {"name", "why"} and ("budget" in skipped["why"] or "--quantize" in skipped["why"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert md.startswith("### GPU check: CPU\n")
    assert "| memory | quantize | images | tokens | s/image |" in md and "| full | none | 2 | 64 |" in md
    assert "README memory table, measured rows (CPU" in md
