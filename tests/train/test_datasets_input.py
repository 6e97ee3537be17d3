"""The trainer's Hugging Face ``datasets`` input: a manifest given as a ``save_to_disk`` folder."""

import json

import pytest

from dreamomni2.mini.world import make_cases, write_cases
from dreamomni2.train.data import dataset_rows, is_dataset_folder, read_manifest

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def mini_manifest(tmp_path_factory):
    return write_cases(make_cases(3, 4), tmp_path_factory.mktemp("mini"), size=32)


def _as_dataset(manifest, folder, edit=None):
    from dreamomni2.synth.orchestrate import save_dataset

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    if edit:
        edit(rows)
    keep = ("task", "images", "instruction", "prompt", "target")
    return save_dataset([{k: r[k] for k in keep if k in r} for r in rows], folder)


def test_a_datasets_folder_reads_like_its_jsonl(mini_manifest):
    folder = _as_dataset(mini_manifest, mini_manifest.parent / "hf")  # beside the manifest: same relative paths
    assert is_dataset_folder(folder) and not is_dataset_folder(mini_manifest)
    from_jsonl, problems_jsonl = read_manifest(mini_manifest)
    from_hf, problems_hf = read_manifest(folder)
    assert problems_jsonl == problems_hf == []
    strip = [(s.task, s.images, s.instruction, s.prompt, s.target, s.line) for s in from_jsonl]
    assert [(s.task, s.images, s.instruction, s.prompt, s.target, s.line) for s in from_hf] == strip
    assert len(from_hf) == 4 and from_hf[0].images[0].is_file()


def test_bad_dataset_rows_are_named_by_row_number(mini_manifest):
    def damage(rows):
        rows[1]["instruction"] = " "
        rows[2]["images"] = ["images/missing.png"]

    folder = _as_dataset(mini_manifest, mini_manifest.parent / "hf_bad", damage)
    samples, problems = read_manifest(folder)
    assert len(samples) == 2
    assert [str(p) for p in problems] == [
        "line 2: empty instruction",
        f"line 3: missing image {mini_manifest.parent / 'images' / 'missing.png'}",
    ]


def test_a_dataset_dict_with_two_splits_is_refused(tmp_path):
    dd = datasets.DatasetDict(
        {"a": datasets.Dataset.from_list([{"x": 1}]), "b": datasets.Dataset.from_list([{"x": 2}])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"a DatasetDict with splits \['a', 'b'\]; save one split"):
        dataset_rows(tmp_path / "dd")
    one = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"x": 1}])})
    one.save_to_disk(str(tmp_path / "one"))
    assert dataset_rows(tmp_path / "one") == [{"x": 1}]


def test_the_trainer_trains_on_a_datasets_folder(mini_manifest, tmp_path):
    from dreamomni2.train.config import load_config
    from dreamomni2.train.loop import Trainer

    folder = _as_dataset(mini_manifest, mini_manifest.parent / "hf_train")
    cfg = {
        "model": {"tiny": {}},
        "data": {"manifest": str(folder), "auto_resize": False, "max_area": 32 * 32},
        "network": {"rank": 4, "alpha": 4},
        "train": {"output_dir": str(tmp_path / "run"), "steps": 2, "batch_size": 2, "lr": 1e-3, "resume": None},
    }
    result = Trainer(load_config(base=cfg)).train()
    assert len(result.losses) == 2 and all(loss > 0 for loss in result.losses)
    assert (result.output / "pytorch_lora_weights.safetensors").is_file()
