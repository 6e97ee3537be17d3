"""Editing data: the stage on the mini model (1-2 steps), filters and counts, templates, the CLI's bad inputs."""

import json
import random
from pathlib import Path

import pytest
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.images import load_image
from dreamomni2.mini.scene import Obj, Scene, render
from dreamomni2.synth.edit_data import (
    EditDataParts,
    edit_data,
    edit_template,
    is_abstract,
    parse_keywords,
    planner_proposer,
    session_editor,
    session_extractor,
)
from dreamomni2.synth.filters import QualityFilter
from dreamomni2.synth.mini import MiniEditor, MiniVLM, edit_chooser, edit_instruction
from dreamomni2.synth.orchestrate import Shard
from dreamomni2.train.data import read_manifest


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def tiny_session():
    """A Session on tiny random components, at the inputs' own (small) sizes."""
    from dreamomni2.model_config import ModelDefaults
    from dreamomni2.session import Session
    from dreamomni2.testing import build_tiny_pipeline

    defaults = ModelDefaults(steps=1, auto_resize=False, max_area=32 * 32, reference_max_area=32 * 32)
    return Session.from_pipeline(build_tiny_pipeline(), defaults=defaults)


@pytest.fixture(scope="module")
def mini_session():
    from dreamomni2.session import Session

    return Session(device="cpu", progress=False)


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    scenes = [Scene(Obj("circle", "red", "solid", "large"), "dark"), Scene(Obj("square", "green", "stripes", "small"),
              "warm"), Scene(Obj("cross", "yellow", "checker", "large"), "light")]  # fmt: skip
    for i, s in enumerate(scenes):
        render(s).save(folder / f"t{i}.png")
    return folder


def _items(folder):
    return [{"id": p.stem, "image": str(p)} for p in sorted(Path(folder).glob("*.png"))]


def test_mini_edit_rows_are_valid_and_put_the_source_first(mini_session, targets, tmp_path):
    vlm = MiniVLM()
    parts = EditDataParts(extractor=session_extractor(mini_session, steps=2), editor=MiniEditor(mini_session, steps=2),
                          instruction=edit_instruction, proposer=vlm.keywords, chooser=edit_chooser,
                          filt=QualityFilter(unrelated=0.0), seed=3)  # fmt: skip
    report = edit_data(_items(targets), tmp_path, parts, shard=Shard(), progress=False)
    assert report.items == 3 and report.kept + sum(report.rejected.values()) >= 3
    samples, problems = read_manifest(tmp_path / "manifest.jsonl")
    assert problems == [] and len(samples) == report.rows >= 1
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for row, sample in zip(rows, samples, strict=True):
        assert sample.task == "edit" and len(sample.images) == 2
        assert sample.images[0].name.startswith("source_") and sample.images[1].name.startswith("reference_")
        assert row["instruction"] == edit_instruction(row["keyword"])
        assert row["keyword"] in ("object", "colour", "pattern", "size", "background")
        source, target = load_image(sample.images[0]), load_image(sample.target)
        assert source.size == target.size == (32, 32)
    records = [json.loads(line) for p in (tmp_path / ".synth" / "edit-data").glob("rank*.jsonl")
               for line in p.read_text().splitlines()]  # fmt: skip
    assert sorted(r["info"]["seed"] for r in records) == [3, 4, 5]
    assert all(c["editor_prompt"] and c["helper"] for r in records for c in r["info"]["candidates"])


def _copy_editor(target, keyword, seed):
    return target.copy(), {"editor_prompt": "nothing"}


def _flat_extractor(image, keyword, seed):
    return Image.new("RGB", image.size, (9, 9, 9))


def test_rejections_are_counted_by_reason(targets, tmp_path):
    parts = EditDataParts(extractor=_flat_extractor, editor=_copy_editor, keywords=["colour"])
    report = edit_data(_items(targets), tmp_path / "copy", parts, shard=Shard(), progress=False)
    assert (report.kept, report.rows, report.rejected) == (0, 0, {"near-identical": 3})
    assert (tmp_path / "copy" / "manifest.jsonl").read_text() == ""

    def recolour(target, keyword, seed):
        return Image.new("RGB", target.size, (255, 255, 255)), {}

    no = EditDataParts(extractor=_flat_extractor, editor=recolour, keywords=["colour"],
                       filt=QualityFilter(unrelated=0.0, verifier=lambda images, question, keyword: False))  # fmt: skip
    report = edit_data(_items(targets), tmp_path / "vlm", no, shard=Shard(), progress=False)
    assert report.rejected == {"vlm-no": 3}
    none = EditDataParts(extractor=_flat_extractor, editor=recolour)
    assert edit_data(_items(targets), tmp_path / "none", none, shard=Shard(), progress=False).rejected == {
        "no-keyword": 3}  # fmt: skip


def test_text_to_image_targets_and_the_session_editor(tmp_path):
    tiny = tiny_session()
    parts = EditDataParts(extractor=session_extractor(tiny, steps=1), editor=session_editor(tiny, steps=1),
                          keywords=["red bag", "stripe pattern"], chooser=lambda kws, rng: list(kws),
                          target_session=tiny, size=(32, 32), steps=1, filt=QualityFilter(1.0, 0.0))  # fmt: skip
    report = edit_data([{"id": "p", "prompt": "a red bag"}], tmp_path, parts, shard=Shard(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert report.rows == 2 and [r["instruction"] for r in rows] == [
        "Replace the red bag in image 1 with the red bag from image 2.",
        "Make the stripe pattern of image 1 like the stripe pattern of image 2."]  # fmt: skip
    assert read_manifest(tmp_path / "manifest.jsonl")[1] == []


def test_templates_keywords_and_proposers():
    assert is_abstract("wood texture") and is_abstract("Colour") and not is_abstract("red bag")
    assert edit_template("pattern") == "Make the pattern of image 1 like the pattern of image 2."
    assert edit_instruction("colour") == "Make the object in image 1 have the colour of the object in image 2."
    assert edit_instruction("object") == "Replace the object in image 1 with the object from image 2."
    with pytest.raises(ValueError, match="no shape edit"):
        edit_instruction("shape")
    assert parse_keywords("1. Red bag, - striped pattern; 'wood texture'\n* cat, cat") == [
        "red bag", "striped pattern", "wood texture", "cat"]  # fmt: skip

    class Stub:
        def generate_reply(self, images, instruction, task):
            return "lamp, gold colour"

    assert planner_proposer(Stub())(Image.new("RGB", (8, 8))) == ["lamp", "gold colour"]
    assert edit_chooser(["shape", "colour"], random.Random(0)) == ["colour"]
    assert edit_chooser(["shape"], random.Random(0)) == []


def test_mini_vlm_answers_the_stage_questions():
    vlm = MiniVLM()
    red, blue = Scene(Obj("circle", "red", "solid", "large"), "dark"), Scene(Obj("circle", "blue", "solid", "large"),
                                                                             "dark")  # fmt: skip
    carrier_red = render(Scene(Obj("square", "red", "solid", "large"), "light"))
    assert vlm([render(red), carrier_red], "Does image 2 show the colour of image 1?", "colour") is True
    assert vlm([render(blue), carrier_red], "Does image 2 show the colour of image 1?", "colour") is False
    assert vlm([render(blue), render(red)], "Does image 1 differ from image 2 in its colour?", "colour") is True
    assert vlm([render(red), render(red)], "Does image 1 differ from image 2 in its object?", "object") is False
    with pytest.raises(ValueError, match="cannot answer"):
        vlm([render(red), render(red)], "Is it nice?", "colour")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}", "-o", "{out}"], "no such file or folder"),
        (["{empty}", "-o", "{out}"], "no images"),
        (["{targets}", "-o", "{full}"], "a non-empty folder that holds no synth run"),
        (["{targets}", "-o", "{out}", "--identical", "0.2", "--unrelated", "0.5"], "want 0 <= unrelated <= identical"),
        (["{targets}", "-o", "{out}", "--keywords-per-item", "0"], "--keywords-per-item: expected a positive integer"),
        (["{targets}", "-o", "{out}", "--extract-lora", "{missing}"], "--extract-lora"),
        (["{bad_items}", "-o", "{out}"], "bad.jsonl:2: not valid JSON"),
        (["{targets}", "-o", "{out}", "--vlm", "nonsense"], "--vlm nonsense: Bad planner spec"),
    ],
)
@pytest.mark.parametrize("stage", ["edit-data", "gen-data"])
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, targets, capsys, argv, message, stage):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "prompt": "x"}\n{oops\n')
    names = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "out": tmp_path / "out",
             "full": tmp_path / "full", "targets": targets, "bad_items": tmp_path / "bad.jsonl"}  # fmt: skip
    argv = [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]
    assert exit_code(["synth", stage, *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
