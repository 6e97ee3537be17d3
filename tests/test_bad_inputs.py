"""A table of named bad inputs across the CLI, the Python API and configs, each with the message it must give.

CLI cases run :func:`dreamomni2.cli.main` in-process and require exit status 2, exactly one line on stderr
containing the expected text (which names the flag, file, row or key) and no traceback. API cases require the
documented exception type (``ValueError``/``TypeError`` or a documented subclass) and a message naming the
argument. A case whose current behaviour is wrong outside the CLI is marked ``xfail(strict=True)`` with what is
wrong, so that fixing it turns the table red until the mark is removed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dreamomni2.cli import main
from tests.conftest import random_image

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nnewpath 0 0 moveto 32 32 lineto stroke\nshowpage\n%%EOF\n"
GOOD_CONFIG = """\
model:
  tiny: {{}}
data:
  manifest: {manifest}
  auto_resize: false
  max_area: 1024
train:
  output_dir: {root}/runs
  steps: 1
"""


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


def needs(module: str):
    """Skip where an optional extra is not installed (the command then says so, a different message)."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory) -> SimpleNamespace:
    """Every file and folder the cases name (built once; no case writes into it)."""
    from safetensors.torch import save_file

    from dreamomni2.testing import save_tiny_pipeline

    root = tmp_path_factory.mktemp("bad_inputs")
    e = SimpleNamespace(root=root)
    e.tiny = root / "tiny"
    save_tiny_pipeline(e.tiny)
    e.img, e.img2 = root / "a.png", root / "b.png"
    random_image(32, 32, seed=0).save(e.img)
    random_image(32, 32, seed=1).save(e.img2)
    e.missing = root / "no-such.png"
    e.textfile = root / "notes.txt"
    e.textfile.write_text("this is not an image\n")
    e.eps = root / "drawing.png"
    e.eps.write_bytes(EPS)
    e.empty = root / "empty.png"
    e.empty.write_bytes(b"")
    e.truncated = root / "truncated.png"
    e.truncated.write_bytes(e.img.read_bytes()[:60])
    e.folder = root / "a-folder"
    e.folder.mkdir()
    e.outdir = root / "outdir.png"
    e.outdir.mkdir()
    e.existing = root / "existing.png"
    e.existing.write_bytes(b"mine")
    e.nofolder = root / "no-such-folder" / "out.png"
    e.notpipe = root / "not-a-pipeline"
    e.notpipe.mkdir()
    for name, text in {
        "m_unknown": '{"stepz": 3}',
        "m_badvalue": '{"steps": 0}',
        "m_badjson": '{"steps": 3,',
        "m_network": '{"planner": "openai:http://127.0.0.1:9/v1"}',
    }.items():
        folder = root / name
        folder.mkdir()
        (folder / "model_index.json").write_text("{}")
        (folder / "dreamomni2.json").write_text(text)
        setattr(e, name, folder)
    e.release = root / "fake-release"
    e.release.mkdir()
    e.lora_bad = root / "lora-bad"
    e.lora_bad.mkdir()
    (e.lora_bad / "pytorch_lora_weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    e.lora_truncated = root / "lora-truncated"
    e.lora_truncated.mkdir()
    save_file({"w": torch.zeros(64, 64)}, e.lora_truncated / "pytorch_lora_weights.safetensors")
    data = (e.lora_truncated / "pytorch_lora_weights.safetensors").read_bytes()
    (e.lora_truncated / "pytorch_lora_weights.safetensors").write_bytes(data[: len(data) // 2])
    e.release_bad = root / "release-damaged"
    for sub in ("edit_lora", "gen_lora"):
        (e.release_bad / sub).mkdir(parents=True)
        (e.release_bad / sub / "pytorch_lora_weights.safetensors").write_bytes(b"\xff" * 16)
    e.nonempty = root / "nonempty"
    e.nonempty.mkdir()
    (e.nonempty / "mine.txt").write_text("keep me")
    e.manifest = root / "manifest.jsonl"
    row = {"task": "edit", "images": ["a.png"], "instruction": "make it red", "target": "b.png"}
    e.manifest.write_text(json.dumps(row) + "\n")
    e.manifest_latin1 = root / "latin1.jsonl"
    e.manifest_latin1.write_bytes('{"task": "edit", "instruction": "caf\xe9"}\n'.encode("latin-1"))
    e.manifest_allbad = root / "allbad.jsonl"
    e.manifest_allbad.write_text('{"task": "paint"}\nnot json\n')
    e.cfg = root / "good.yaml"
    e.cfg.write_text(GOOD_CONFIG.format(manifest=e.manifest, root=root))
    e.cfg_yaml = root / "syntax.yaml"
    e.cfg_yaml.write_text("model:\n  tiny: {\ntrain: [\n")
    e.cfg_unknown = root / "unknown.yaml"
    e.cfg_unknown.write_text(GOOD_CONFIG.format(manifest=e.manifest, root=root) + "  learning_rate: 0.1\n")
    e.cfg_latin1 = root / "latin1.yaml"
    e.cfg_latin1.write_bytes(b"# caf\xe9\n" + e.cfg.read_bytes())
    e.cfg_allbad = root / "allbad.yaml"
    e.cfg_allbad.write_text(GOOD_CONFIG.format(manifest=e.manifest_allbad, root=root))
    e.cfg_latin1_manifest = root / "latin1-manifest.yaml"
    e.cfg_latin1_manifest.write_text(GOOD_CONFIG.format(manifest=e.manifest_latin1, root=root))
    e.cfg_nomanifest = root / "nomanifest.yaml"
    e.cfg_nomanifest.write_text(GOOD_CONFIG.format(manifest=root / "no-such.jsonl", root=root))
    e.cfg_notpipe = root / "notpipe.yaml"
    e.cfg_notpipe.write_text(
        GOOD_CONFIG.format(manifest=e.manifest, root=root).replace("  tiny: {}", f"  pretrained: {e.notpipe}")
    )
    e.missing_cfg = root / "no-such.yaml"
    return e


@pytest.fixture()
def ctx(env, tmp_path, monkeypatch) -> dict[str, str]:
    """The placeholders of the case table, plus a fresh output path; runs in ``tmp_path`` with no keys set."""
    monkeypatch.chdir(tmp_path)
    # main()'s logging.basicConfig then writes to the captured stderr, as it would to the terminal: a warning
    # printed before the error line counts as a second line.
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    for var in ("DREAMOMNI2_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    values = {k: str(v) for k, v in vars(env).items()}
    values["out"] = str(tmp_path / "out.png")
    return values


# ---------------------------------------------------------------------------------------------------- CLI table
TAIL = ["-i", "make the object red", "-o", "{out}", "--model", "{tiny}", "--quiet", "--steps", "1"]


def edit(*extra: str) -> list[str]:
    """``edit`` on one good image with the tiny model, then ``extra`` (later options win)."""
    return ["edit", "{img}", *TAIL, *extra]


def edit_images(*images: str) -> list[str]:
    return ["edit", *images, *TAIL]


def generate(*extra: str) -> list[str]:
    return ["generate", "{img}", *TAIL, "--size", "32x32", *extra]


def bench(*extra: str) -> list[str]:
    return ["bench", "--n", "4", "--steps", "1", "--quiet", "--model", "{tiny}", *extra]


def train(*extra: str) -> list[str]:
    return ["train", "{cfg}", *extra]


def case(case_id: str, argv: list[str], message: str, *marks) -> pytest.param:
    return pytest.param(argv, message, id=case_id, marks=marks)


CLI_CASES = [
    # --- images
    case("edit-missing-image", edit_images("{missing}"), "no-such.png: no such file"),
    case("edit-text-file-as-image", edit_images("{textfile}"), "notes.txt: not an image file in an accepted format"),
    case("edit-postscript-named-png", edit_images("{eps}"), "drawing.png: not an image file in an accepted format"),
    case("edit-empty-file", edit_images("{empty}"), "empty.png: not an image file"),
    case("edit-truncated-png", edit_images("{truncated}"), "truncated.png: cannot read image"),
    case("edit-folder-as-image", edit_images("{folder}"), "a-folder: not a file"),
    case("edit-six-images", edit_images(*["{img}"] * 6), "got 6 images; at most 5"),
    case("generate-missing-reference", ["generate", "{img}", "{missing}", *TAIL], "no-such.png: no such file"),
    # --- size, steps, guidance, seed, instruction, max-area
    case("edit-size-0x0", edit("--size", "0x0"), "argument --size: bad size '0x0'"),
    case("edit-size-huge", edit("--size", "99999x99999"), "--size"),
    case("edit-size-abc", edit("--size", "abc"), "argument --size: bad size 'abc'"),
    case("generate-size-side-4112", generate("--size", "4096x4112"), "--size: Request.size must be between 16"),
    case("edit-steps-0", edit("--steps", "0"), "argument --steps: expected a positive integer, got '0'"),
    case("edit-steps-huge", edit("--steps", "100000"), "--steps"),
    case("edit-steps-float", edit("--steps", "2.5"), "argument --steps: expected a positive integer"),
    case("edit-guidance-nan", edit("--guidance", "nan"), "--guidance"),
    case("edit-guidance-inf", edit("--guidance", "inf"), "--guidance"),
    case("edit-guidance-word", edit("--guidance", "high"), "argument --guidance: invalid float value"),
    case("edit-seed-negative", edit("--seed", "-1"), "--seed"),
    case("edit-seed-2-64", edit("--seed", str(2**64)), "--seed"),
    case("edit-seed-word", edit("--seed", "lucky"), "argument --seed: invalid int value"),
    case("edit-empty-instruction", edit("-i", ""), "--instruction"),
    case("edit-whitespace-instruction", edit("-i", " \t "), "--instruction"),
    case("edit-5000-char-instruction", edit("-i", "make it red " * 417), "--instruction"),
    case("edit-non-utf8-instruction", edit("-i", "make it r\udcffd"), "--instruction"),
    case("edit-max-area-0", edit("--max-area", "0"), "argument --max-area: expected a positive integer"),
    case("edit-max-area-10", edit("--max-area", "10"), "--max-area"),
    case("generate-no-image", ["generate", *TAIL], "the following arguments are required: IMAGE"),
    case("edit-no-instruction", ["edit", "{img}", "--model", "{tiny}"], "arguments are required: -i/--instruction"),
    # --- output
    case("edit-output-folder-missing", edit("-o", "{nofolder}"), "folder"),
    case("edit-output-gif", edit("-o", "out.gif"), "-o out.gif: use a .png, .jpg or .webp file name"),
    case("edit-output-no-suffix", edit("-o", "out"), "-o out: use a .png"),
    case("edit-output-is-folder", edit("-o", "{outdir}"), "is a folder"),
    case("edit-output-is-folder-force", edit("-o", "{outdir}", "--force"), "is a folder"),
    case("edit-output-exists", edit("-o", "{existing}"), "the file exists; pass --force to overwrite it"),
    # --- model, lora, release
    case("edit-model-missing", edit("--model", "{root}/no-such-model"), "--model"),
    case("edit-model-not-a-pipeline", edit("--model", "{notpipe}"), "not a diffusers pipeline folder"),
    case("edit-model-defaults-unknown-key", edit("--model", "{m_unknown}"), "dreamomni2.json: unknown key 'stepz'"),
    case("edit-model-defaults-bad-value", edit("--model", "{m_badvalue}"), "key 'steps' must be a positive integer"),
    case("edit-model-defaults-invalid-json", edit("--model", "{m_badjson}"), "dreamomni2.json: not valid JSON"),
    case("edit-model-defaults-network-planner", edit("--model", "{m_network}"), "key 'planner' names a network"),
    case("edit-lora-missing", edit("--lora", "{root}/no-such-lora"), "--lora"),
    case(
        "edit-lora-damaged-safetensors",
        edit("--lora", "{lora_bad}"),
        "--lora {lora_bad}: pytorch_lora_weights.safetensors is not a readable safetensors file",
    ),
    case(
        "edit-lora-truncated-safetensors",
        edit("--lora", "{lora_truncated}"),
        "--lora {lora_truncated}: pytorch_lora_weights.safetensors is not a readable safetensors file",
    ),
    case("edit-release-empty-folder", edit("--release", "{release}"), "edit_lora/pytorch_lora_weights.safetensors"),
    case(
        "edit-release-damaged-lora",
        edit("--release", "{release_bad}"),
        "--release {release_bad}: pytorch_lora_weights.safetensors is not a readable safetensors file",
    ),
    case("edit-release-missing", edit("--release", "{root}/no-such-release"), "release folder"),
    # --- planner, device, memory, dtype, id policy
    case("edit-planner-bogus", edit("--planner", "bogus"), "--planner bogus: Bad planner spec 'bogus'"),
    case("edit-planner-qwen-missing", edit("--planner", "qwen:/no/such"), "--planner qwen:/no/such"),
    case("edit-planner-openai-ftp", edit("--planner", "openai:ftp://x"), "--planner openai:ftp://x"),
    case("edit-planner-empty", edit("--planner", " "), "--planner"),
    case("edit-device-tpu", edit("--device", "tpu"), "argument --device: invalid choice: 'tpu'"),
    pytest.param(
        edit("--device", "cuda"),
        "--device cuda: no CUDA device",
        id="edit-device-cuda-absent",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present"),
    ),
    case("edit-dtype-bogus", edit("--dtype", "float33"), "argument --dtype: invalid choice"),
    case("edit-id-policy-nope", edit("--id-policy", "nope"), "argument --id-policy: invalid choice: 'nope'"),
    case("edit-memory-huge", edit("--memory", "huge"), "argument --memory: invalid choice: 'huge'"),
    case("edit-unknown-flag", edit("--strength", "0.5"), "unrecognized arguments: --strength"),
    # --- make-tiny, data check
    case("make-tiny-non-empty-folder", ["make-tiny", "{nonempty}"], "nonempty: exists and is not empty"),
    case("make-tiny-onto-a-file", ["make-tiny", "{existing}"], "existing.png: is a file, not a folder"),
    case("make-tiny-onto-a-file-force", ["make-tiny", "{existing}", "--force"], "existing.png: is a file, not a"),
    case("data-check-missing-manifest", ["data", "check", "{root}/nope.jsonl"], "nope.jsonl: no such manifest"),
    case("data-check-non-utf8-manifest", ["data", "check", "{manifest_latin1}"], "latin1.jsonl: not UTF-8 text"),
    case("data-check-folder-as-manifest", ["data", "check", "{folder}"], "a-folder: no such manifest"),
    case("data-check-max-images-0", ["data", "check", "{manifest}", "--max-images", "0"], "--max-images"),
    # --- train, train-planner
    case("train-missing-config", ["train", "{missing_cfg}"], "no-such.yaml: no such config file"),
    case("train-yaml-syntax-error", ["train", "{cfg_yaml}"], "syntax.yaml: not valid YAML"),
    case("train-non-utf8-config", ["train", "{cfg_latin1}"], "latin1.yaml: not UTF-8 text (byte 5)"),
    case("train-unknown-key", ["train", "{cfg_unknown}"], "unknown key train.learning_rate"),
    case("train-set-lr-negative", train("--set", "train.lr=-1"), "train.lr must be > 0"),
    case("train-set-lr-nan", train("--set", "train.lr=.nan"), "train: lr"),
    case("train-set-keep-last-0", train("--set", "train.keep_last=0"), "train.keep_last must be >= 1"),
    case("train-set-steps-abc", train("--set", "train.steps=abc"), "train.steps: expected an integer, got 'abc'"),
    case("train-set-max-area-0", train("--set", "data.max_area=0"), "data.max_area must be > 0"),
    case("train-set-bad-yaml-value", train("--set", "train.lr=[1e-4"), "--set train.lr: not a valid YAML value"),
    case("train-set-no-equals", train("--set", "train.lr"), "--set 'train.lr': expected key=value"),
    case("train-set-unknown-section", train("--set", "optim.lr=1"), "unknown key optim"),
    case("train-set-on-bad-row", train("--set", "data.on_bad_row=maybe"), "data.on_bad_row must be"),
    case("train-set-id-policy", train("--set", "model.id_policy=nope"), "model.id_policy"),
    case(
        "train-set-dtype-unknown",
        train("--set", "model.dtype=float33"),
        "model.dtype must be float32, bfloat16 or float16, got 'float33'",
    ),
    case(
        "train-set-resume-missing",
        train("--set", "train.resume={root}/no-such-checkpoint"),
        "train.resume {root}/no-such-checkpoint: not a complete checkpoint",
    ),
    case(
        "train-validation-image-missing",
        train("--set", "validation.every=1", "--set", "validation.cases=[{{images: [{missing}], prompt: x}}]"),
        "validation.cases[0].images[0]: {missing}: no such file",
    ),
    case("train-set-targets-match-nothing", train("--set", "network.targets=[nope]"), "network.targets: Target mod"),
    case("train-manifest-missing", ["train", "{cfg_nomanifest}"], "data.manifest"),
    case("train-pretrained-not-a-pipeline", ["train", "{cfg_notpipe}"], "model.pretrained"),
    case("train-every-row-bad", ["train", "{cfg_allbad}"], "allbad.jsonl: no usable rows"),
    case("train-non-utf8-manifest", ["train", "{cfg_latin1_manifest}"], "latin1.jsonl: not UTF-8 text"),
    case("train-planner-missing-config", ["train-planner", "{missing_cfg}"], "no-such.yaml: no such config file"),
    case("train-planner-non-utf8-config", ["train-planner", "{cfg_latin1}"], "latin1.yaml: not UTF-8 text"),
    case("train-planner-bad-set-value", ["train-planner", "{cfg}", "--set", "train.lr={{"], "--set train.lr"),
    # --- bench, serve, web
    case("bench-size-40", bench("--size", "40"), "--size 40: must be a multiple of 16"),
    case("bench-planner-bogus", bench("--planner", "bogus"), "--planner bogus"),
    case("bench-out-missing-folder", bench("--out", "{root}/no-such-folder/r.jsonl"), "--out"),
    case("bench-n-0", bench("--n", "0"), "argument --n: expected a positive integer"),
    case("bench-exclude-train-bad", bench("--exclude-train", "x"), "argument --exclude-train: bad training draw"),
    case("serve-public-host-no-key", ["serve", "--host", "0.0.0.0"], "--host 0.0.0.0 is reachable", needs("uvicorn")),
    case("serve-empty-api-key", ["serve", "--api-key", ""], "--api-key is empty", needs("uvicorn")),
    case("serve-port-too-big", ["serve", "--port", "70000"], "argument --port: expected a port number"),
    case("serve-timeout-0", ["serve", "--timeout", "0"], "argument --timeout: expected a positive number"),
    case("web-port-0", ["web", "--port", "0"], "argument --port: expected a port number 1-65535"),
    # --- the command itself
    case("no-command", [], "the following arguments are required: command"),
    case("unknown-command", ["paint"], "invalid choice: 'paint'"),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)`` with its exit status (argparse's ``SystemExit`` included), stdout and stderr."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def check_usage_error(argv: list[str], message: str, capsys) -> None:
    rc, out, err = run_cli(argv, capsys)
    assert "Traceback" not in err + out, err
    assert rc == 2, (rc, err)
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert message in err, err


@pytest.mark.parametrize(("argv", "message"), CLI_CASES)
def test_cli_bad_input(argv, message, ctx, capsys):
    check_usage_error([a.format(**ctx) for a in argv], message.format(**ctx), capsys)
    assert not Path(ctx["out"]).exists()


@pytest.mark.parametrize("command", ["web", "serve"])
def test_cli_busy_port(command, ctx, capsys):
    pytest.importorskip("gradio" if command == "web" else "uvicorn")
    pytest.importorskip("gradio" if command == "web" else "fastapi")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        message = (
            f"--host 127.0.0.1 --port {port}: cannot" if command == "web" else f"cannot listen on 127.0.0.1:{port}: "
        )
        check_usage_error([command, "--port", str(port), "--quiet", "--model", ctx["tiny"]], message, capsys)


def test_cli_existing_output_kept(ctx, env, capsys):
    check_usage_error([a.format(**ctx) for a in edit("-o", "{existing}")], "pass --force", capsys)
    assert env.existing.read_bytes() == b"mine"
    check_usage_error(["make-tiny", str(env.nonempty)], "not empty", capsys)
    assert [p.name for p in env.nonempty.iterdir()] == ["mine.txt"]


# ---------------------------------------------------------------------------------------------------- API table
def _session(**kwargs):
    from dreamomni2.session import Session

    return Session(**kwargs)


def _session_planner(env, spec):
    return _session(model=env.tiny, planner=spec).planner


def _request(**kwargs):
    from dreamomni2.request import Request, check_request

    fields = {"task": "edit", "images": [random_image(32, 32)], "instruction": "make it red", **kwargs}
    return check_request(Request(**fields))


def _check_request(value):
    from dreamomni2.request import check_request

    return check_request(value)


def _load(env, name, **kwargs):
    from dreamomni2.images import load_image

    return load_image(getattr(env, name), **kwargs)


def _defaults(data):
    from dreamomni2.model_config import ModelDefaults

    return ModelDefaults.from_dict(data, "x/dreamomni2.json")


def _planner(spec, **options):
    from dreamomni2.planner import make_planner

    return make_planner(spec, **options)


def _config(**sections):
    from dreamomni2.train.config import load_config

    base = {"model": {"tiny": {}}, "data": {"manifest": "m.jsonl"}}
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values} if isinstance(values, dict) else values
    return load_config(base=base)


def api(case_id: str, call, exc: type[BaseException], message: str, *marks) -> pytest.param:
    return pytest.param(call, exc, message, id=case_id, marks=marks)


def _image_load_error():
    from dreamomni2.images import ImageLoadError

    return ImageLoadError


def _config_error():
    from dreamomni2.train.config import ConfigError

    return ConfigError


IMG = random_image(32, 32)

API_CASES = [
    # --- Session options
    api("session-memory-huge", lambda e: _session(model=e.tiny, memory="huge"), ValueError, "huge"),
    api("session-device-tpu", lambda e: _session(model=e.tiny, device="tpu"), ValueError, "--device tpu"),
    api("session-dtype-bogus", lambda e: _session(model=e.tiny, dtype="float33"), ValueError, "--dtype float33"),
    api("session-max-area-10", lambda e: _session(model=e.tiny, max_area=10), ValueError, "--max-area 10"),
    api("session-max-area-str", lambda e: _session(model=e.tiny, max_area="big"), ValueError, "--max-area big"),
    api("session-id-policy-nope", lambda e: _session(model=e.tiny, id_policy="nope"), ValueError, "nope"),
    api("session-model-missing", lambda e: _session(model=e.root / "nope"), ValueError, "--model"),
    api("session-model-not-pipeline", lambda e: _session(model=e.notpipe), ValueError, "no model_index.json"),
    api("session-model-defaults-bad", lambda e: _session(model=e.m_badvalue), ValueError, "key 'steps'"),
    api("session-model-network-planner", lambda e: _session(model=e.m_network), ValueError, "network endpoint"),
    api("session-lora-missing", lambda e: _session(model=e.tiny, loras=[e.root / "x"]), ValueError, "--lora"),
    api("session-release-no-model", lambda e: _session(release=e.release), ValueError, "--release needs --model"),
    api("session-release-empty", lambda e: _session(model=e.tiny, release=e.release), FileNotFoundError, "edit_lora"),
    api("session-planner-bogus", lambda e: _session_planner(e, "bogus"), ValueError, "Bad planner spec 'bogus'"),
    api("session-planner-number", lambda e: _session_planner(e, 3), TypeError, "planner must be a spec string"),
    # --- check_request
    api("request-steps-0", lambda e: _request(steps=0), ValueError, "Request.steps must be between 1 and 150, got 0"),
    api("request-steps-151", lambda e: _request(steps=151), ValueError, "Request.steps must be between 1 and 150"),
    api("request-steps-float", lambda e: _request(steps=2.5), TypeError, "Request.steps must be an int"),
    api("request-steps-bool", lambda e: _request(steps=True), TypeError, "Request.steps must be an int"),
    api("request-seed-negative", lambda e: _request(seed=-1), ValueError, "Request.seed must be between 0"),
    api("request-seed-2-63", lambda e: _request(seed=2**63), ValueError, "Request.seed must be between 0"),
    api("request-n-0", lambda e: _request(n=0), ValueError, "Request.n must be between 1 and 8"),
    api("request-n-9", lambda e: _request(n=9), ValueError, "Request.n must be between 1 and 8"),
    api(
        "request-guidance-nan",
        lambda e: _request(guidance=math.nan),
        ValueError,
        "Request.guidance must be a finite number",
    ),
    api(
        "request-guidance-inf",
        lambda e: _request(guidance=math.inf),
        ValueError,
        "Request.guidance must be a finite number",
    ),
    api("request-guidance-str", lambda e: _request(guidance="3.5"), TypeError, "Request.guidance must be a number"),
    api("request-size-0x0", lambda e: _request(size=(0, 0)), ValueError, "Request.size must be between 16 and 4096"),
    api("request-size-huge", lambda e: _request(size=(99999, 99999)), ValueError, "Request.size must be between"),
    api("request-size-str", lambda e: _request(size="abc"), TypeError, "Request.size must be (width, height)"),
    api("request-size-3-values", lambda e: _request(size=(32, 32, 3)), TypeError, "Request.size must be"),
    api("request-max-area-10", lambda e: _request(max_area=10), ValueError, "Request.max_area must be between 256"),
    api("request-max-area-negative", lambda e: _request(max_area=-1), ValueError, "Request.max_area must be between"),
    api("request-empty-instruction", lambda e: _request(instruction=""), ValueError, "Request.instruction is empty"),
    api("request-blank-instruction", lambda e: _request(instruction=" \n"), ValueError, "Request.instruction is empty"),
    api("request-none-instruction", lambda e: _request(instruction=None), TypeError, "Request.instruction must be a"),
    api("request-number-instruction", lambda e: _request(instruction=7), TypeError, "Request.instruction must be a"),
    api("request-empty-prompt", lambda e: _request(prompt=""), ValueError, "Request.prompt is empty"),
    api("request-long-instruction", lambda e: _request(instruction="x" * 5000), ValueError, "has 5000 characters"),
    api("request-surrogate", lambda e: _request(instruction="r\udcffd"), ValueError, "is not valid UTF-8"),
    api("request-task-paint", lambda e: _request(task="paint"), ValueError, "Unknown task 'paint'"),
    api("request-task-none", lambda e: _request(task=None), ValueError, "Unknown task None"),
    api("request-images-one-pil", lambda e: _request(images=IMG), TypeError, "Request.images must be a list"),
    api("request-images-path", lambda e: _request(images=[str(e.img)]), TypeError, "Request.images[0] is a str"),
    api("request-images-none-item", lambda e: _request(images=[IMG, None]), TypeError, "Request.images[1] is a None"),
    api("request-images-six", lambda e: _request(images=[IMG] * 6), ValueError, "got 6 images; at most 5"),
    api("request-edit-no-images", lambda e: _request(images=[]), ValueError, "an edit needs at least one image"),
    api(
        "request-kwargs-clash", lambda e: _request(pipeline_kwargs={"prompt": "x"}), TypeError, "may not set ['prompt']"
    ),
    api("request-not-a-request", lambda e: _check_request({}), TypeError, "expected a Request, got dict"),
    # --- load_image
    api("load-image-missing", lambda e: _load(e, "missing"), _image_load_error, "no-such.png: no such file"),
    api("load-image-folder", lambda e: _load(e, "folder"), _image_load_error, "a-folder: not a file"),
    api("load-image-text", lambda e: _load(e, "textfile"), _image_load_error, "notes.txt: not an image file"),
    api("load-image-postscript", lambda e: _load(e, "eps"), _image_load_error, "drawing.png: not an image file"),
    api("load-image-empty", lambda e: _load(e, "empty"), _image_load_error, "empty.png: not an image file"),
    api("load-image-truncated", lambda e: _load(e, "truncated"), _image_load_error, "truncated.png: cannot read"),
    api("load-image-too-many-px", lambda e: _load(e, "img", max_pixels=100), _image_load_error, "above the limit"),
    # --- ModelDefaults.from_dict
    api("defaults-not-a-dict", lambda e: _defaults([1]), ValueError, "expected a JSON object of defaults, got list"),
    api("defaults-unknown-key", lambda e: _defaults({"stepz": 1}), ValueError, "unknown key 'stepz'"),
    api("defaults-steps-0", lambda e: _defaults({"steps": 0}), ValueError, "key 'steps' must be a positive integer"),
    api("defaults-steps-bool", lambda e: _defaults({"steps": True}), ValueError, "key 'steps' must be a positive"),
    api("defaults-guidance-nan", lambda e: _defaults({"guidance": math.nan}), ValueError, "key 'guidance' must be"),
    api("defaults-auto-resize-str", lambda e: _defaults({"auto_resize": "yes"}), ValueError, "key 'auto_resize'"),
    api("defaults-id-policy-nope", lambda e: _defaults({"id_policy": "nope"}), ValueError, "key 'id_policy' must be"),
    api("defaults-planner-bogus", lambda e: _defaults({"planner": "bogus"}), ValueError, "key 'planner': Bad planner"),
    api("defaults-planner-empty", lambda e: _defaults({"planner": ""}), ValueError, "key 'planner' must be"),
    api(
        "defaults-planner-network",
        lambda e: _defaults({"planner": "openai:https://example.com/v1"}),
        ValueError,
        "key 'planner' names a network endpoint",
    ),
    # --- make_planner
    api("planner-bogus", lambda e: _planner("bogus"), ValueError, "Bad planner spec 'bogus'"),
    api("planner-empty", lambda e: _planner(""), ValueError, "Empty planner spec"),
    api("planner-not-str", lambda e: _planner(None), ValueError, "Empty planner spec None"),
    api("planner-mini-with-arg", lambda e: _planner("mini:x"), ValueError, "Bad planner spec 'mini:x'"),
    api("planner-qwen-no-arg", lambda e: _planner("qwen"), ValueError, "Bad planner spec 'qwen'"),
    api("planner-openai-nothing", lambda e: _planner("openai:"), ValueError, "has nothing after ':'"),
    api("planner-qwen-missing", lambda e: _planner("qwen:/no/such"), FileNotFoundError, "'/no/such' does not exist"),
    api("planner-openai-ftp", lambda e: _planner("openai:ftp://x"), ValueError, "must start with http:// or https://"),
    api("planner-unknown-option", lambda e: _planner("mini", temperature=0), TypeError, "Unknown planner option"),
    # --- load_config(base=...)
    api("config-lr-negative", lambda e: _config(train={"lr": -1}), _config_error, "train.lr must be > 0, got -1"),
    api("config-lr-nan", lambda e: _config(train={"lr": math.nan}), _config_error, "must be finite numbers"),
    api("config-lr-word", lambda e: _config(train={"lr": "fast"}), _config_error, "train.lr: expected a number"),
    api("config-keep-last-0", lambda e: _config(train={"keep_last": 0}), _config_error, "train.keep_last must be >= 1"),
    api("config-steps-str", lambda e: _config(train={"steps": "abc"}), _config_error, "train.steps: expected an int"),
    api("config-steps-0", lambda e: _config(train={"steps": 0}), _config_error, "train.steps must be > 0"),
    api("config-max-area-0", lambda e: _config(data={"max_area": 0}), _config_error, "data.max_area must be > 0"),
    api("config-max-images-9", lambda e: _config(data={"max_images": 9}), _config_error, "data.max_images must be"),
    api("config-unknown-key", lambda e: _config(train={"learning_rate": 1}), _config_error, "unknown key train.learni"),
    api("config-unknown-section", lambda e: _config(optim={"lr": 1}), _config_error, "unknown key optim"),
    api("config-no-model", lambda e: _config(model={"tiny": None}), _config_error, "model.pretrained (or model.tiny)"),
    api("config-rank-0", lambda e: _config(network={"rank": 0}), _config_error, "network.rank must be > 0"),
    api("config-bool-as-int", lambda e: _config(train={"steps": True}), _config_error, "train.steps: expected an int"),
    api("config-id-policy", lambda e: _config(model={"id_policy": "nope"}), _config_error, "model.id_policy"),
    api("config-section-not-map", lambda e: _config(train=[1]), _config_error, "train: expected a mapping"),
    api(
        "config-dtype-unknown",
        lambda e: _config(model={"dtype": "float33"}),
        _config_error,
        "model.dtype",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), API_CASES)
def test_api_bad_input(call, exc, message, env):
    if not isinstance(exc, type):
        exc = exc()  # a lazily imported documented subclass
    with pytest.raises(exc) as info:
        call(env)
    assert issubclass(info.type, (ValueError, TypeError)) or exc is FileNotFoundError
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


# ---------------------------------------------------------------------------------------------------- pipeline
PIPE_CASES = [
    pytest.param({"height": 0}, ValueError, "height must be an integer of at least 16 px, got 0", id="pipe-height-0"),
    pytest.param({"width": 15}, ValueError, "width must be an integer of at least 16 px", id="pipe-width-15"),
    pytest.param({"max_area": -1}, ValueError, "max_area must be an integer of at least 256", id="pipe-max-area-neg"),
    pytest.param({"task": "paint"}, ValueError, "Unknown task 'paint'", id="pipe-unknown-task"),
    pytest.param({"images": [IMG] * 6}, ValueError, "Got 6 images but at most 5", id="pipe-six-images"),
    pytest.param({"num_inference_steps": 0}, ValueError, "num_inference_steps must be a positive", id="pipe-steps-0"),
    pytest.param({"images": [random_image(8, 8)]}, ValueError, "Image 1 is 8x8 px", id="pipe-image-too-small"),
    pytest.param({"images": [[IMG]]}, ValueError, "Image 1 is a list", id="pipe-nested-list"),
    pytest.param(
        {"images": ["a.png"]},
        TypeError,
        "Image 1",
        id="pipe-path-string-image",
    ),
    pytest.param(
        {"images": [IMG, None]},
        TypeError,
        "Image 2",
        id="pipe-none-in-images",
    ),
    pytest.param(
        {"latents": torch.zeros(1, 3, 5)},
        ValueError,
        "latents",
        id="pipe-latents-wrong-shape",
    ),
    pytest.param(
        {"guidance_scale": math.nan},
        ValueError,
        "guidance_scale",
        id="pipe-guidance-nan",
    ),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), PIPE_CASES)
def test_pipeline_bad_call(kwargs, exc, message, tiny_pipe):
    call = {"images": [IMG], "prompt": "make it red", "task": "edit", "num_inference_steps": 1, "output_type": "np",
            **kwargs}  # fmt: skip
    with pytest.raises(exc) as info:
        tiny_pipe(**call)
    assert message in str(info.value)


def test_table_size():
    assert len(CLI_CASES) + len(API_CASES) + len(PIPE_CASES) >= 60
