"""The Session: every surface through it gives the images the code gave before it (tests/data/golden, written by
commit f3ecbd9's code), and its request/result/defaults contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.model_config import ModelDefaults
from dreamomni2.request import Request, check_request
from dreamomni2.session import Session
from tests.conftest import random_image
from tests.golden_inputs import cli_cases, release_folders, release_runs, tiny_pics

GOLDEN = Path(__file__).parent / "data" / "golden"


def _assert_same(image, golden: str, tol: int = 1) -> None:
    if isinstance(image, np.ndarray):
        image = Image.fromarray((image.clip(0, 1) * 255).round().astype(np.uint8))
    want = np.asarray(Image.open(GOLDEN / f"{golden}.png"), dtype=int)
    got = np.asarray(image, dtype=int)
    assert got.shape == want.shape, golden
    assert np.abs(got - want).max() <= tol, f"{golden}: max pixel difference {np.abs(got - want).max()}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("golden")
    tiny_pics(work)
    return work


@pytest.mark.parametrize("name", ["mini_edit", "mini_generate", "mini_edit_planned", "tiny_edit", "tiny_generate"])
def test_cli_gives_the_images_it_gave_before(work, name, tmp_path):
    out = tmp_path / f"{name}.png"
    assert main([*cli_cases(work)[name], "-o", str(out), "--quiet"]) == 0
    _assert_same(Image.open(out), f"cli_{name}")


def test_release_loader_gives_the_images_it_gave_before(work):
    from dreamomni2.release import load_release

    base, release = release_folders(work)
    rel = load_release(base, release, device="cpu", dtype=torch.float32, memory="full", planner="none")
    rel.pipe.set_progress_bar_config(disable=True)
    assert isinstance(rel.session, Session) and rel.session.task_adapters == {"edit": "edit", "generate": "generate"}
    for name, (images, instruction, task, kw) in release_runs().items():
        image, planned = rel.run(images, instruction, task=task, **kw)
        assert planned.prompt == instruction and rel.active_task == task
        _assert_same(image, f"release_{name}")


def test_bench_runner_gives_the_images_it_gave_before():
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import mini_suite

    session = Session(planner="mini", progress=False)
    cases = mini_suite(n=16, exclude=frozenset())
    res = run_mini_bench(session, cases, batch_size=4, keep_images=True, progress=False)
    for i, image in enumerate(res.images):
        _assert_same(image, f"bench_{i:02d}", tol=2)
    assert [r.success for r in res.records] == json.loads((GOLDEN / "bench.json").read_text())
    assert res.config["planner"] == "mini"


# ------------------------------------------------------------------------------------------------ the contract


@pytest.fixture(scope="module")
def tiny_session(tmp_path_factory):
    from dreamomni2.testing import save_tiny_pipeline

    folder = save_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "model")
    (Path(folder) / "dreamomni2.json").write_text(
        json.dumps({"steps": 2, "max_area": 4096, "reference_max_area": 4096})
    )
    return Session(folder, device="cpu", progress=False)


def test_session_loads_lazily_once(tiny_session, monkeypatch):
    from dreamomni2.pipeline import DreamOmni2Pipeline

    calls = []
    orig = DreamOmni2Pipeline.from_pretrained.__func__
    monkeypatch.setattr(DreamOmni2Pipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: calls.append(a) or orig(cls, *a, **k)))  # fmt: skip
    fresh = Session(tiny_session.options.model, device="cpu", progress=False)
    assert not fresh.loaded and calls == []
    fresh.run(Request("edit", [random_image(64, 64)], "make it red", seed=1))
    fresh.run(Request("generate", [], "a cat", seed=1, size=(32, 32)))
    assert len(calls) == 1 and fresh.loaded


def test_result_reports_what_was_used(tiny_session):
    calls = []
    res = tiny_session.run(Request("edit", [random_image(96, 64, seed=2)], "make it red", seed=5,
                                   progress=lambda step, total: calls.append((step, total))))  # fmt: skip
    st = res.settings
    assert (st.steps, st.guidance, st.seed, st.max_area, st.reference_max_area) == (2, 3.5, 5, 4096, 4096)
    assert (st.id_policy, st.auto_resize, st.n, st.task) == ("dreamomni2", True, 1, "edit")
    assert res.prompt == "make it red" and res.planned.backend == "none" and res.seed == 5
    assert calls == [(1, 2), (2, 2)]
    assert set(res.timings) >= {"load", "plan", "draw"} and res.timings["draw"] > 0
    assert len(res.images) == 1 and res.image.size == (64, 48)  # 96x64 under a 4096 px cap, floored to 16


def test_random_seed_is_reported_and_reproduces(tiny_session):
    res = tiny_session.run(Request("generate", [], "a cat", size=(32, 32)))
    assert isinstance(res.seed, int) and 0 <= res.seed < 2**31
    again = tiny_session.run(Request("generate", [], "a cat", size=(32, 32), seed=res.seed))
    assert np.array_equal(np.asarray(res.image), np.asarray(again.image))


def test_n_images_and_batch_equal_single(tiny_session):
    res = tiny_session.run(Request("generate", [random_image(32, 32)], "a cat", seed=3, size=(32, 32), n=2))
    assert len(res.images) == 2 and res.settings.n == 2
    assert not np.array_equal(np.asarray(res.images[0]), np.asarray(res.images[1]))
    reqs = [Request("edit", [random_image(32, 32, seed=s)], f"prompt {s}", seed=s) for s in range(3)]
    batched = tiny_session.run_batch(reqs)
    assert [r.timings["batch"] for r in batched] == [3.0] * 3
    for req, b in zip(reqs, batched, strict=True):
        single = tiny_session.run(req)
        assert single.timings["batch"] == 1.0
        assert np.abs(np.asarray(single.image, dtype=int) - np.asarray(b.image, dtype=int)).max() <= 2


def test_planned_prompt_and_planning_off():
    session = Session(planner="mini", progress=False)
    scene = random_image(32, 32)
    text = "give the 1st pic the colour of the second picture"
    planned = session.plan([scene, scene], text, "edit")
    assert planned.backend == "mini" and planned.prompt != text
    given = session.run(Request("edit", [scene, scene], text, prompt="Keep it.", seed=0))
    assert given.prompt == "Keep it." and given.planned.backend == "given"
    off = session.run(Request("edit", [scene, scene], text, plan=False, seed=0))
    assert off.prompt == text and off.planned.backend == "none"
    assert (off.settings.steps, off.settings.max_area, off.settings.auto_resize) == (20, 1024, False)  # mini defaults


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(task="inpaint"), ValueError, "Unknown task 'inpaint'"),
        (dict(images=[]), ValueError, "an edit needs at least one image"),
        (dict(images=[random_image(32, 32)] * 6), ValueError, "at most 5"),
        (dict(images=random_image(32, 32)), TypeError, "list of PIL images"),
        (dict(images=["x.png"]), TypeError, r"images\[0\] is a str"),
        (dict(instruction=""), ValueError, "Request.instruction is empty"),
        (dict(steps=0), ValueError, "Request.steps must be between 1 and 150, got 0"),
        (dict(n=99), ValueError, "Request.n must be between 1 and 8"),
        (dict(guidance=float("inf")), ValueError, "Request.guidance must be a finite number"),
        (dict(size=(0, 32)), ValueError, "Request.size must be between 16 and 4096"),
        (dict(size=(4096, 4096 + 16)), ValueError, "Request.size must be between 16 and 4096"),
        (dict(steps=151), ValueError, "Request.steps must be between 1 and 150"),
        (dict(instruction="x" * 4001), ValueError, "Request.instruction has 4001 characters; the limit is 4000"),
        (dict(seed=-1), ValueError, "Request.seed"),
        (dict(pipeline_kwargs={"prompt": "x"}), TypeError, "may not set"),
        (dict(instruction="caf\udce9"), ValueError, "Request.instruction is not valid UTF-8 text"),
    ],
)
def test_bad_requests_name_the_field(kwargs, error, message):
    base = dict(task="edit", images=[random_image(32, 32)], instruction="make it red")
    with pytest.raises(error, match=message):
        check_request(Request(**{**base, **kwargs}))


def test_check_request_canonicalises():
    req = check_request(Request("Editing", (random_image(32, 32),), "x"))
    assert req.task == "edit" and isinstance(req.images, list)


def _defaults(tmp_path, data):
    (tmp_path / "dreamomni2.json").write_text(json.dumps(data))
    return ModelDefaults.read(tmp_path)


def test_model_defaults_read_and_refuse(tmp_path):
    assert ModelDefaults.read(tmp_path) == ModelDefaults()
    assert _defaults(tmp_path, {"steps": 4, "planner": "mini"}) == ModelDefaults(steps=4, planner="mini")
    f = tmp_path / "dreamomni2.json"
    with pytest.raises(ValueError, match=rf"{f}: unknown key 'step'"):
        _defaults(tmp_path, {"step": 4})
    with pytest.raises(ValueError, match=r"key 'steps' must be a positive integer, got 0"):
        _defaults(tmp_path, {"steps": 0})
    with pytest.raises(ValueError, match=r"key 'guidance' must be a finite number"):
        _defaults(tmp_path, {"guidance": "high"})
    with pytest.raises(ValueError, match=r"key 'id_policy' must be one of"):
        _defaults(tmp_path, {"id_policy": "nope"})
    with pytest.raises(ValueError, match=r"key 'planner': Bad planner spec 'gpt'"):
        _defaults(tmp_path, {"planner": "gpt"})
    with pytest.raises(ValueError, match="names a network endpoint"):
        _defaults(tmp_path, {"planner": "openai:http://127.0.0.1:9/v1"})
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelDefaults.read(tmp_path)
    f.write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        ModelDefaults.read(tmp_path)


def test_a_model_folder_cannot_name_an_endpoint_at_the_cli(tmp_path, capsys):
    from dreamomni2.testing import save_tiny_pipeline

    folder = save_tiny_pipeline(tmp_path / "m")
    (Path(folder) / "dreamomni2.json").write_text(json.dumps({"planner": "openai:http://127.0.0.1:9/v1"}))
    src = tmp_path / "a.png"
    random_image(32, 32).save(src)
    assert main(["edit", str(src), "-i", "x", "-o", str(tmp_path / "o.png"), "--model", folder, "--quiet"]) == 2
    assert "names a network endpoint" in capsys.readouterr().err


def test_session_option_errors_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="--model .*no model_index.json"):
        Session(tmp_path)
    with pytest.raises(ValueError, match="memory mode"):
        Session(memory="huge")
    with pytest.raises(ValueError, match="--lora .*no such file"):
        Session(loras=[tmp_path / "nope"])
    with pytest.raises(ValueError, match="--release needs --model"):
        Session(release=tmp_path)
    with pytest.raises(ValueError, match="--device tpu"):
        Session(device="tpu")
    with pytest.raises(ValueError, match="--max-area 10"):
        Session(max_area=10)


def test_reference_latent_cache_skips_repeat_encodings(tiny_session, monkeypatch):
    from dreamomni2.latent_cache import LatentCache

    session = Session(tiny_session.options.model, device="cpu", progress=False)
    uncached = Session(tiny_session.options.model, device="cpu", progress=False, latent_cache_bytes=0)
    calls = []
    pipe = session.pipe
    orig = pipe.vae.encode
    monkeypatch.setattr(pipe.vae, "encode", lambda x, *a, **k: calls.append(x.shape) or orig(x, *a, **k))
    refs = [random_image(64, 64, seed=1), random_image(48, 80, seed=2)]
    first = session.run(Request("edit", refs, "make it red", seed=4))
    assert len(calls) == 2 and len(session.latent_cache) == 2 and session.latent_cache.misses == 2
    second = session.run(Request("edit", refs, "make it blue", seed=4))
    assert len(calls) == 2 and session.latent_cache.hits == 2  # no new encoding
    third = session.run(Request("edit", [refs[1]], "make it red", seed=4))
    assert len(calls) == 2  # refs[1] at the same prepared size: cached too
    plain = uncached.run(Request("edit", refs, "make it red", seed=4))
    assert np.array_equal(np.asarray(first.image), np.asarray(plain.image))  # the cache changes no pixel
    assert not np.array_equal(np.asarray(first.image), np.asarray(second.image)) and third.image.size == (48, 80)
    small = LatentCache(max_bytes=100)
    small.put("a", torch.zeros(10))  # 40 bytes
    small.put("b", torch.zeros(10))
    small.put("c", torch.zeros(10))  # evicts "a"
    assert small.get("a") is None and small.get("c") is not None and small.bytes == 80 and len(small) == 2
    small.put("big", torch.zeros(100))  # larger than the bound: not kept
    assert small.get("big") is None


def test_pickle_only_weights_are_refused(tmp_path, capsys):
    from dreamomni2.testing import build_tiny_pipeline

    folder = tmp_path / "pickled"
    build_tiny_pipeline().save_pretrained(folder, safe_serialization=False)
    assert not list((folder / "vae").glob("*.safetensors")) and list((folder / "vae").glob("*.bin"))
    with pytest.raises(ValueError, match=r"safetensors only; pickle \.bin files are never loaded"):
        Session(folder, device="cpu").load()
    src = tmp_path / "a.png"
    random_image(32, 32).save(src)
    argv = ["edit", str(src), "-i", "x", "-o", str(tmp_path / "o.png"), "--model", str(folder), "--quiet"]
    assert main(argv) == 2 and "safetensors only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(height=0, width=32), "height must be an integer of at least 16 px, got 0"),
     (dict(width=-32, height=32), "width must be an integer of at least 16 px"),
     (dict(max_area=-5), "max_area must be an integer of at least 256 px, got -5")],
)  # fmt: skip
def test_pipeline_refuses_non_positive_sizes(tiny_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipe(images=[random_image(32, 32)], prompt="x", task="generate", num_inference_steps=1, **kwargs)
