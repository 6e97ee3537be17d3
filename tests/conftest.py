import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Tiny models: one thread is many times faster than two competing ones on a small shared CPU.
torch.set_num_threads(1)

RELEASE_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "release_examples"


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="session")
def tiny_pipe():
    from dreamomni2.testing import build_tiny_pipeline

    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def release_examples() -> Path:
    if not (RELEASE_EXAMPLES / "cases.jsonl").is_file():
        pytest.skip(f"release examples not found at {RELEASE_EXAMPLES} (they live in ../shared, present in CI only)")
    return RELEASE_EXAMPLES
