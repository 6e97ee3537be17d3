"""Extraction through the Session (tiny and mini models), the mini world's ground-truth pairs, ``synth extract``."""

import json

import numpy as np
import pytest

from dreamomni2.cli import main
from dreamomni2.mini.scene import Obj, Scene, render
from dreamomni2.request import Request
from dreamomni2.synth.extract import check_keyword, extract, extract_requests, extraction_prompt
from dreamomni2.synth.mini import (
    CARRIER,
    extraction_pairs,
    extraction_target,
    keyword_attr,
    score_extraction,
    write_extraction_pairs,
)
from dreamomni2.train.data import read_manifest
from tests.conftest import random_image


def exit_code(argv: list[str]) -> int:
    """The CLI's exit status, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


@pytest.fixture(scope="module")
def tiny_session():
    """A Session on tiny random components, at the inputs' own (small) sizes."""
    from dreamomni2.model_config import ModelDefaults
    from dreamomni2.session import Session
    from dreamomni2.testing import build_tiny_pipeline

    defaults = ModelDefaults(steps=2, auto_resize=False, max_area=4096, reference_max_area=4096)
    return Session.from_pipeline(build_tiny_pipeline(), defaults=defaults)


def test_extract_gives_one_reference_per_image_and_keyword(tiny_session):
    session = tiny_session
    images = [random_image(32, 32, seed=1), random_image(48, 32, seed=2)]
    refs = extract(session, images, ["bag", "pattern"], seed=10, steps=2)
    single = session.run(Request("generate", [images[1]], "Extract the pattern from image 1.", plan=False, seed=13,
                                 steps=2, size=(48, 32))).image  # fmt: skip
    wide = single.size  # the input's shape (scaled to the model's max_area by the pipeline)
    assert wide[0] > wide[1] and refs[0][0].size[0] == refs[0][0].size[1]
    assert [[r.size for r in row] for row in refs] == [[refs[0][0].size] * 2, [wide] * 2]
    assert np.abs(np.asarray(refs[1][1], float) - np.asarray(single, float)).max() <= 2  # batched = one call each
    assert not np.array_equal(np.asarray(refs[0][0]), np.asarray(refs[0][1]))  # other keyword, other output


def test_extract_requests_and_bad_arguments():
    reqs = extract_requests([random_image(32, 32)] * 2, ["colour", "bag"], seed=5, size=(16, 16))
    assert [(r.seed, r.instruction, r.plan, r.size) for r in reqs] == [
        (5, "Extract the colour from image 1.", False, (16, 16)), (6, "Extract the bag from image 1.", False, (16, 16)),
        (7, "Extract the colour from image 1.", False, (16, 16)), (8, "Extract the bag from image 1.", False, (16, 16)),
    ]  # fmt: skip
    assert extraction_prompt(" red bag ") == "Extract the red bag from image 1."
    with pytest.raises(ValueError, match="bad keyword ''"):
        check_keyword("")
    with pytest.raises(ValueError, match="bad keyword"):
        check_keyword("a\nb")
    with pytest.raises(TypeError, match="a keyword must be a string"):
        check_keyword(3)
    with pytest.raises(ValueError, match="non-empty list"):
        extract_requests([random_image(32, 32)], "colour")
    with pytest.raises(TypeError, match="list of PIL images"):
        extract_requests(random_image(32, 32), ["colour"])


def test_mini_ground_truth_extraction():
    scene = Scene(Obj("circle", "red", "stripes", "small"), "dark")
    assert extraction_target(scene, "object") == Scene(scene.obj, "light")
    assert extraction_target(scene, "colour") == CARRIER.replace(color="red")
    assert extraction_target(scene, "color") == CARRIER.replace(color="red")
    assert extraction_target(scene, "background") == CARRIER.replace(background="dark")
    assert keyword_attr("Pattern") == "pattern"
    with pytest.raises(ValueError, match="unknown mini-world keyword 'bag'"):
        keyword_attr("bag")
    assert score_extraction(render(extraction_target(scene, "pattern")), scene, "pattern") == {
        "keyword": True, "exact": True}  # fmt: skip
    assert score_extraction(render(scene), scene, "pattern") == {"keyword": True, "exact": False}  # a copy
    assert score_extraction(render(CARRIER), scene, "colour") == {"keyword": False, "exact": False}
    pairs = extraction_pairs(12, seed=3)
    assert [p[1] for p in pairs[:7]] == ["object", "shape", "colour", "pattern", "size", "background", "object"]
    assert all(p[2] == extraction_target(p[0], p[1]) for p in pairs)


def test_extraction_pairs_are_a_valid_training_manifest(tmp_path):
    manifest = write_extraction_pairs(tmp_path, 6, seed=1)
    samples, problems = read_manifest(manifest)
    assert problems == [] and len(samples) == 6
    assert samples[2].task == "generate" and samples[2].text() == "Extract the colour from image 1."
    row = json.loads(manifest.read_text().splitlines()[2])
    from dreamomni2.mini.analyzer import analyze

    assert analyze(render(Scene.from_dict(row["source_attributes"]))).to_dict() == row["source_attributes"]


def test_cli_extract_writes_references(tmp_path, capsys):  # on the shipped mini model (the default --model)
    render(Scene(Obj("circle", "red", "solid", "large"), "dark")).save(tmp_path / "a.png")
    out = tmp_path / "refs"
    args = ["synth", "extract", str(tmp_path / "a.png"), "--keyword", "bag", "--keyword", "colour", "-o", str(out),
            "--steps", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000_a_bag.png", "000_a_colour.png", "extract.jsonl"]
    rows = [json.loads(line) for line in (out / "extract.jsonl").read_text().splitlines()]
    assert [(r["keyword"], r["seed"], r["output"]) for r in rows] == [
        ("bag", 0, "000_a_bag.png"),
        ("colour", 1, "000_a_colour.png"),
    ]
    capsys.readouterr()
    assert main(args) == 2  # outputs exist, no --force
    assert capsys.readouterr().err.strip().endswith("000_a_bag.png exists (use --force to overwrite)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.png", "--keyword", "bag"], "missing.png"),
        (["{img}", "--keyword", " "], "--keyword: bad keyword"),
        (["{img}", "--keyword", "bag", "--steps", "0"], "--steps: expected a positive integer"),
    ],
)
def test_cli_extract_bad_inputs_exit_2_with_one_line(tmp_path, capsys, argv, message):
    random_image(32, 32).save(tmp_path / "img.png")
    argv = [a.replace("{img}", str(tmp_path / "img.png")) for a in argv]
    assert exit_code(["synth", "extract", *argv, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
