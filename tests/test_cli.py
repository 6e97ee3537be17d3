import json
import subprocess
import sys

import pytest
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.resize import output_size, reference_size
from tests.conftest import random_image


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    assert main(["make-tiny", str(folder)]) == 0
    assert (folder / "model_index.json").is_file()
    return folder


@pytest.fixture()
def pics(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(96, 64), (64, 64), (48, 80)]):
        p = tmp_path / f"im{i}.png"
        random_image(w, h, seed=i).save(p)
        paths.append(str(p))
    return paths


def test_edit_and_generate_write_images(tiny_dir, pics, tmp_path, capsys):
    out = tmp_path / "edit.png"
    rc = main(
        [
            "edit",
            *pics,
            "-i",
            "put the cat of image 2 in image 1",
            "-o",
            str(out),
            "--model",
            str(tiny_dir),
            "--steps",
            "2",
            "--max-area",
            "4096",
            "--quiet",
        ]
    )
    assert rc == 0
    assert Image.open(out).size == (64, 48)  # 96x64 -> 1248x832 -> capped 64x48
    assert "wrote" in capsys.readouterr().out
    out2 = tmp_path / "gen.png"
    rc = main(
        [
            "generate",
            *pics[1:],
            "-i",
            "a cat",
            "-o",
            str(out2),
            "--model",
            str(tiny_dir),
            "--steps",
            "1",
            "--size",
            "128x64",
            "--max-area",
            "4096",
            "--id-policy",
            "kontext",
            "--quiet",
        ]
    )
    assert rc == 0 and Image.open(out2).size == (80, 32)


def test_same_seed_same_image_other_seed_differs(tiny_dir, pics, tmp_path):
    args = ["edit", pics[0], "-i", "x", "--model", str(tiny_dir), "--steps", "1", "--max-area", "4096", "--quiet"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main([*args, "-o", str(tmp_path / f"{name}.png"), "--seed", seed]) == 0
    a, b, c = (Image.open(tmp_path / f"{n}.png").tobytes() for n in "abc")
    assert a == b and a != c


@pytest.mark.parametrize(
    "argv, message",
    [
        (["edit", "{missing}", "-i", "x"], "no such file"),
        (["edit", "{text}", "-i", "x"], "not an image file"),
        (["edit", "{dir}", "-i", "x"], "not a file"),
        (["edit", "{p0}", "-i", "x", "--model", "{nomodel}"], "not a diffusers pipeline folder"),
        (["edit", "{p0}", "-i", "x", "--size", "12by3", "--model", "{tiny}"], "bad size '12by3'"),
        (["edit", "{p0}", "-i", "x", "--steps", "0", "--model", "{tiny}"], "expected a positive integer"),
        (["edit", "{p0}", "-i", "x", "--id-policy", "uno", "--model", "{tiny}"], "invalid choice: 'uno'"),
        (["edit", "{p0}", "-i", "x", "--bogus", "--model", "{tiny}"], "unrecognized arguments: --bogus"),
        (["edit", "{p0}", "--model", "{tiny}"], "the following arguments are required: -i/--instruction"),
        (["generate", *["{p0}"] * 6, "-i", "x", "--model", "{tiny}"], "at most 5"),
        (["edit", "{p0}", "-i", "x", "--model", "{tiny}", "-o", "{dir}/no/such/out.png"], "does not exist"),
        (["edit", "{p0}", "-i", "x", "--model", "{tiny}", "-o", "{dir}/out.txt"], "use a .png"),
        (["edit", "{tinypng}", "-i", "x", "--model", "{tiny}", "--max-area", "4096"], "smaller than one latent patch"),
        (["edit", "{p0}", "-i", "x", "--model", "{tiny}", "--lora", "{missing}"], "--lora"),
    ],
)
def test_bad_input_one_line_exit_2(argv, message, tiny_dir, pics, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    random_image(8, 8).save(tmp_path / "tiny.png")
    fill = dict(
        missing=str(tmp_path / "nope.png"),
        text=str(tmp_path / "notes.txt"),
        dir=str(tmp_path),
        p0=pics[0],
        nomodel=str(tmp_path),
        tiny=str(tiny_dir),
        tinypng=str(tmp_path / "tiny.png"),
    )
    argv = [a.format(**fill) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.png")]
    argv += ["--quiet"]
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(argv))
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_no_model_anywhere(monkeypatch, pics, tmp_path, capsys):
    import dreamomni2.mini

    monkeypatch.setattr(dreamomni2.mini, "MODEL_DIR", tmp_path / "nothing")
    assert main(["edit", pics[0], "-i", "x", "-o", str(tmp_path / "o.png")]) == 2
    assert "no model given: pass --model DIR" in capsys.readouterr().err


def test_planner_prompt_is_printed(tiny_dir, pics, tmp_path, capsys):
    out = tmp_path / "p.png"
    text = "Give the thing in the first picture the hue of the second picture."
    args = ["edit", *pics[:2], "-i", text, "-o", str(out), "--model", str(tiny_dir), "--steps", "1",
            "--max-area", "4096", "--quiet", "--planner", "mini"]  # fmt: skip
    assert main(args) == 0
    assert "prompt: Make the object in image 1 have the colour of the object in image 2." in capsys.readouterr().out
    assert main([*args[:-1], "qwen:/no/such/folder", "--force"]) == 2
    assert "--planner qwen:/no/such/folder" in capsys.readouterr().err


def test_console_script_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dreamomni2.cli", "edit", str(tmp_path / "x.png"), "-i", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"dreamomni2: error: {tmp_path / 'x.png'}: no such file"


@pytest.mark.release_examples
def test_release_cases_through_cli(release_examples, tiny_dir, tmp_path):
    """Every case of the release's examples (real photos, mixed sizes) runs through the CLI on the tiny model."""
    area = 64 * 64
    cases = [json.loads(line) for line in (release_examples / "cases.jsonl").read_text().splitlines() if line.strip()]
    for k, case in enumerate(cases):
        out = tmp_path / f"case{k}.png"
        paths = [str(release_examples / p) for p in case["images"]]
        rc = main(
            [
                case["task"],
                *paths,
                "-i",
                case["instruction"],
                "-o",
                str(out),
                "--model",
                str(tiny_dir),
                "--steps",
                "1",
                "--max-area",
                str(area),
                "--quiet",
            ]
        )
        assert rc == 0, case
        if case["task"] == "edit":
            w, h = case["sizes"][0]
            want = output_size(*reference_size(w, h, max_area=area), max_area=area)
        else:
            want = output_size(1024, 1024, max_area=area)
        assert Image.open(out).size == want, case


def test_existing_output_needs_force(tiny_dir, pics, tmp_path, capsys):
    out = tmp_path / "keep.png"
    out.write_bytes(b"mine")
    args = ["edit", pics[1], "-i", "make it red", "-o", str(out), "--model", str(tiny_dir), "--steps", "1",
            "--max-area", "4096", "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "the file exists; pass --force" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert main([*args, "--force"]) == 0
    assert Image.open(out).size == (64, 64)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keep.png")]  # no temporary file left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--guidance", "nan"], "Request.guidance must be a finite number"),
        (["-i", " "], "Request.instruction is empty"),
    ],
)
def test_silently_wrong_requests_exit_2(tiny_dir, pics, tmp_path, capsys, extra, message):
    args = ["edit", pics[1], "-i", "make it red", "-o", str(tmp_path / "o.png"), "--model", str(tiny_dir), "--quiet",
            *extra]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_make_tiny_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("x")
    assert main(["make-tiny", str(tmp_path)]) == 2
    assert "exists and is not empty; pass --force" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "x" and not (tmp_path / "model_index.json").exists()
