"""Generation data: references extracted from each image -> (references, instruction, target) rows."""

import json
import random

import pytest
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.mini.scene import Obj, Scene, render
from dreamomni2.synth.edit_data import session_extractor
from dreamomni2.synth.filters import QualityFilter
from dreamomni2.synth.gen_data import GenDataParts, gen_data, gen_template
from dreamomni2.synth.mini import MiniVLM, extraction_target, gen_chooser, gen_instruction
from dreamomni2.synth.orchestrate import Shard
from dreamomni2.train.data import read_manifest

SCENES = [Scene(Obj("circle", "red", "solid", "large"), "dark"), Scene(Obj("square", "green", "stripes", "small"),
          "warm"), Scene(Obj("cross", "yellow", "checker", "large"), "dark")]  # fmt: skip


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    for i, s in enumerate(SCENES):
        render(s).save(folder / f"t{i}.png")
    return folder


def _oracle(image, keyword, seed):
    """A perfect extractor (the ground truth of the analyzed image)."""
    return render(extraction_target(MiniVLM().describe(image), keyword))


def test_gen_rows_with_a_perfect_extractor(targets, tmp_path):
    vlm = MiniVLM()
    parts = GenDataParts(extractor=_oracle, instruction=lambda kws, t: gen_instruction(kws, vlm.describe(t)),
                         proposer=vlm.keywords, chooser=gen_chooser, filt=QualityFilter(verifier=vlm),
                         seed=1)  # fmt: skip
    items = [{"id": p.stem, "image": str(p)} for p in sorted(targets.glob("*.png"))]
    report = gen_data(items, tmp_path, parts, shard=Shard(), progress=False)
    assert (report.items, report.rows, report.rejected) == (3, 3, {})
    samples, problems = read_manifest(tmp_path / "manifest.jsonl")
    assert problems == [] and [s.task for s in samples] == ["generate"] * 3
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for row, sample, scene in zip(rows, samples, SCENES, strict=True):
        assert len(sample.images) == len(row["keywords"]) >= 1
        assert row["instruction"] == gen_instruction(row["keywords"], scene)
        assert MiniVLM().describe(Image.open(sample.target)) == scene


def test_gen_data_on_the_mini_model_and_copies_rejected(targets, tmp_path):
    from dreamomni2.session import Session

    session = Session(device="cpu", progress=False)
    parts = GenDataParts(extractor=session_extractor(session, steps=1), keywords=["object", "colour"])
    items = [{"id": p.stem, "image": str(p)} for p in sorted(targets.glob("*.png"))]
    report = gen_data(items, tmp_path / "mini", parts, shard=Shard(), progress=False)
    assert report.items == 3 and report.rows + sum(report.rejected.values()) == 3
    assert read_manifest(tmp_path / "mini" / "manifest.jsonl")[1] == []

    def copier(image, keyword, seed):
        return image.copy()

    copies = gen_data(items, tmp_path / "copy", GenDataParts(extractor=copier, keywords=["bag"]), shard=Shard(),
                      progress=False)  # fmt: skip
    assert (copies.rows, copies.rejected) == (0, {"near-identical": 3})


def test_instructions_and_chooser():
    assert gen_template(["bag"]) == "Generate an image with the bag of image 1."
    assert gen_template(["bag", "wood texture", "style"]) == (
        "Generate an image with the bag of image 1, the wood texture of image 2 and the style of image 3."
    )
    scene = SCENES[1]
    assert gen_instruction(["object"], scene) == "Generate the object from image 1 on a warm background."
    text = gen_instruction(["colour", "pattern"], scene)
    assert "the colour of image 1 and the pattern of image 2" in text and text.endswith("on a warm background.")
    with pytest.raises(ValueError, match="'object' alone or distinct object attributes"):
        gen_instruction(["object", "colour"], scene)
    picks = [gen_chooser(["object", "shape", "colour", "pattern", "size", "background"], random.Random(s))
             for s in range(30)]  # fmt: skip
    assert ["object"] in picks and all(p == ["object"] or 1 <= len(p) <= 3 and "background" not in p for p in picks)


def test_cli_gen_data_runs_and_resumes(targets, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["synth", "gen-data", str(targets), "-o", str(out), "--mini", "--steps", "1", "--quiet", "--dataset"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "gen-data: 3 items" in first and (out / "dataset" / "state.json").is_file()
    manifest = (out / "manifest.jsonl").read_bytes()
    assert main(argv) == 0  # every item finished: nothing runs again, same manifest
    assert (out / "manifest.jsonl").read_bytes() == manifest
    assert main([*argv[:-1], "--seed", "9"]) == 2  # other settings in the same folder
    assert "other settings" in capsys.readouterr().err
