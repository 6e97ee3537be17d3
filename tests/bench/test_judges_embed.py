"""The embedding judges (``clip:DIR``, ``dino:DIR``) on tiny random models built offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamomni2.bench.judges import make_judge
from dreamomni2.bench.judges.embed import cosine_rows
from dreamomni2.bench.suite import SuiteCase
from tests.bench.judge_fixtures import build_tiny_clip, build_tiny_dino

CASE = SuiteCase("generate/x/1", "generate", "abstract", "x", ["a.png", "b.png", "c.png"], "A red circle.")


def _noise(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embed")
    return {"clip": build_tiny_clip(root / "clip"), "dino": build_tiny_dino(root / "dino")}


def test_cosine_rows():
    import torch

    assert cosine_rows(torch.tensor([1.0, 0.0]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])) == [
        1.0,
        0.0,
        -1.0,
    ]


def test_clip_scores_identical_images_1(folders: dict[str, Path]):
    judge = make_judge(f"clip:{folders['clip']}", device="cpu").prepare()
    assert (judge.name, judge.kind) == (f"clip:{folders['clip']}", "score")
    out = _noise(0)
    v = judge.judge(CASE, out, [out.copy(), _noise(1), _noise(2, size=48)])
    assert set(v.scores) == {"clip_i_1", "clip_i_2", "clip_i_3", "clip_i", "clip_t"}
    assert v.scores["clip_i_1"] == pytest.approx(1.0, abs=1e-6)
    assert v.scores["clip_i_2"] < 1.0 - 1e-6
    assert v.scores["clip_i"] == pytest.approx(np.mean([v.scores[f"clip_i_{k}"] for k in (1, 2, 3)]))
    assert -1.0 <= v.scores["clip_t"] <= 1.0
    assert (v.judged, v.success, v.score) == (True, None, v.scores["clip_i"])
    again = judge.judge(CASE, out, [out.copy(), _noise(1), _noise(2, size=48)])
    assert again.scores == v.scores  # deterministic


def test_dino_scores_identical_images_1(folders: dict[str, Path]):
    judge = make_judge(f"dino:{folders['dino']}", device="cpu").prepare()
    out = _noise(3)
    v = judge.judge(CASE, out, [out.copy(), _noise(4)])
    assert set(v.scores) == {"dino_1", "dino_2", "dino"}
    assert v.scores["dino_1"] == pytest.approx(1.0, abs=1e-6)
    assert v.scores["dino_2"] < 1.0 - 1e-6
    assert (v.judged, v.success, v.score) == (True, None, v.scores["dino"])


def test_a_folder_without_config_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="CLIP judge folder .* has no config.json"):
        make_judge(f"clip:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="DINO judge folder"):
        make_judge(f"dino:{tmp_path / 'missing'}")
