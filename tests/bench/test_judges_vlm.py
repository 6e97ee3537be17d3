"""The pointwise VLM judge: prompts, the reply parser, the vote, a stub OpenAI endpoint and the tiny random Qwen."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dreamomni2 import limits
from dreamomni2.bench.judges import make_judge
from dreamomni2.bench.judges.vlm import (
    POINTWISE_PROMPTS,
    VLMJudge,
    majority,
    parse_answer,
    pointwise_prompt,
)
from dreamomni2.bench.suite import SuiteCase
from tests.bench.judge_fixtures import stub_judge_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "judges.md"
CASE = SuiteCase("edit/replace/1", "edit", "concrete", "replace", ["a.png", "b.png"],
                 "Replace the cat in image 1 with the dog in image 2.")  # fmt: skip


def _img(value: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (value, value, value))


# --- prompts ------------------------------------------------------------------------------------------------------


def test_prompts_are_written_out_verbatim_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    for task, prompt in POINTWISE_PROMPTS.items():
        assert prompt in text, f"docs/judges.md lacks the {task} prompt verbatim"


def test_pointwise_prompt_numbers_the_images():
    edit = pointwise_prompt("edit", 2, "Make  it\nred.")
    assert "Images 1 to 2 are the inputs, in order; image 1 is the image to edit. Image 3 is the edited result." in edit
    assert "Instruction: Make it red.\n" in edit
    assert "3. Nothing that the instruction does not ask to change has changed from image 1." in edit
    gen = pointwise_prompt("generate", 1, "A dog.")
    assert "Image 1 is the reference image. Image 2 is the generated image." in gen
    assert "changed from image 1" not in gen
    with pytest.raises(ValueError, match="task 'paint'"):
        pointwise_prompt("paint", 1, "x")


# --- parsing ------------------------------------------------------------------------------------------------------

PARSE = [
    ('{"verdict": "yes", "reason": "fine"}', "yes", "fine"),
    ('```json\n{"verdict": "No", "reason": "the cup is gone"}\n```', "no", "the cup is gone"),
    ('Here you go: {"Verdict": "YES"} done', "yes", ""),
    ('{"verdict": true}', "yes", ""),
    ('<think>is it {"verdict": "no"}?</think>{"verdict": "yes", "reason": "ok"}<|im_end|>', "yes", "ok"),
    ("VERDICT: no\nREASON: colour wrong", "no", "colour wrong"),
    ("**Verdict:** yes", "yes", ""),
    ("Yes.", "yes", ""),
    ("no", "no", ""),
]


@pytest.mark.parametrize(("reply", "answer", "reason"), PARSE)
def test_parse_answer_reads_the_verdict(reply: str, answer: str, reason: str):
    parsed = parse_answer(reply)
    assert (parsed.answer, parsed.reason, parsed.problem) == (answer, reason, None)


UNUSABLE = [
    (None, "empty reply"),
    ("   ", "empty reply"),
    ('{"verdict": "maybe"}', "malformed reply: verdict 'maybe' is not one of no/yes"),
    ("VERDICT: yes\nVERDICT: no", "malformed reply: conflicting or unknown verdict lines"),
    ("I'm sorry, but I can't help with that.", "refused: I'm sorry, but I can't help with that."),
    ("The image shows a cat.", "malformed reply (no verdict found): The image shows a cat."),
    ("Yes, the cat is there but the sofa changed colour.", "malformed reply (no verdict found)"),
    ("x" * (limits.MAX_JUDGE_REPLY_CHARS + 1), f"over the {limits.MAX_JUDGE_REPLY_CHARS} limit"),
]


@pytest.mark.parametrize(("reply", "problem"), UNUSABLE)
def test_unusable_replies_give_no_answer(reply, problem: str):
    parsed = parse_answer(reply)
    assert parsed.answer is None
    assert parsed.problem is not None and problem in parsed.problem


_NOISE = st.text(alphabet=st.characters(blacklist_characters="{}<>", blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_answer_is_total(reply: str):
    parsed = parse_answer(reply)
    assert parsed.answer in (None, "yes", "no")
    assert (parsed.answer is None) == (parsed.problem is not None)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["yes", "no"]), _NOISE, _NOISE, _NOISE)
def test_a_json_verdict_survives_noise_around_it(verdict: str, reason: str, before: str, after: str):
    import json

    reply = before + json.dumps({"verdict": verdict, "reason": reason}) + after
    parsed = parse_answer(reply)
    assert parsed.answer == verdict
    assert parsed.reason == " ".join(reason.split())


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet='{}[]":,yesnoverdict \n', min_size=1, max_size=200))
def test_parse_answer_on_brace_soup_never_raises(reply: str):
    assert parse_answer(reply).answer in (None, "yes", "no")


@pytest.mark.parametrize("piece", ["{", '{"verdict": ', "verdict: ", "[", "<think>", "I'm sorry "])
def test_parse_answer_is_fast_on_adversarial_input(piece: str):
    reply = (piece * (limits.MAX_JUDGE_REPLY_CHARS // len(piece)))[: limits.MAX_JUDGE_REPLY_CHARS]
    start = time.perf_counter()
    parsed = parse_answer(reply)
    assert time.perf_counter() - start < 0.5
    assert parsed.answer is None


def test_majority_vote_and_ties():
    assert majority(["yes", "yes", "no"])[0] == "yes"
    assert majority(["no", None, None])[0] == "no"
    assert majority(["yes", "no"])[0] is None
    assert majority([None, None])[0] is None


class _Scripted:
    """A backend answering from a list, in turn."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def chat(self, images, text, temperature=0):
        self.calls.append((len(images), text, temperature))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_vote_over_samples():
    backend = _Scripted(['{"verdict": "yes", "reason": "a"}', "garbage", '{"verdict": "yes", "reason": "b"}'])
    v = VLMJudge(backend, name="stub", samples=3).judge(CASE, _img(1), [_img(2), _img(3)])
    assert (v.judged, v.success, v.scores) == (True, True, {"yes": 2.0, "no": 0.0, "unjudged": 1.0})
    assert v.reason == "2 of 3 samples say yes: a"
    assert [c[0] for c in backend.calls] == [3, 3, 3] and {c[2] for c in backend.calls} == {0.7}
    tie = VLMJudge(_Scripted(["yes", "no"]), name="stub", samples=2).judge(CASE, _img(1), [_img(2)])
    assert (tie.judged, tie.success, tie.reason) == (False, None, "tie 1 yes / 1 no")


def test_a_failing_backend_is_unjudged():
    from dreamomni2.planner.base import PlannerError

    v = VLMJudge(_Scripted([PlannerError("Planner endpoint x sent no complete reply within 1s")])).judge(
        CASE, _img(1), [_img(2)]
    )
    assert (v.judged, v.success) == (False, None)
    assert v.reason == "call failed: judge endpoint x sent no complete reply within 1s"
    assert v.raw == "<no reply>"


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="samples must be an integer in 1..15"):
        VLMJudge(_Scripted([]), samples=0)


# --- a stub OpenAI-compatible endpoint ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with stub_judge_server() as (url, handler):
        yield url, handler


@pytest.mark.parametrize(
    ("mode", "judged", "success", "reason"),
    [
        ("yes", True, True, "the instruction is followed"),
        ("no", True, False, "image 1 changed"),
        ("lines", True, True, "looks right"),
        ("malformed", False, None, "malformed reply: verdict 'probably' is not one of no/yes"),
        ("chatter", False, None, "malformed reply (no verdict found): The image shows a red circle"),
        ("refused", False, None, "refused: I'm sorry, but I can't help"),
        ("empty", False, None, "empty reply"),
        ("fail", False, None, "call failed: judge endpoint"),
    ],
)
def test_openai_judge_against_the_stub(server, mode: str, judged: bool, success, reason: str):
    url, handler = server
    judge = make_judge(f"vlm:openai:{url}/{mode}/v1#judge-model", timeout=5).prepare()
    assert judge.name == f"vlm:openai:{url}/{mode}/v1#judge-model"
    handler.requests.clear()
    v = judge.judge(CASE, _img(200), [_img(10), _img(100)])
    assert (v.id, v.judged, v.success) == (CASE.id, judged, success)
    assert reason in v.reason
    body = handler.requests[0]["body"]
    content = body["messages"][0]["content"]
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert [p["type"] for p in content] == ["image_url"] * 3 + ["text"]
    assert content[-1]["text"] == pointwise_prompt("edit", 2, CASE.instruction)


def test_a_slow_endpoint_hits_the_deadline_and_is_unjudged(server):
    url, _ = server
    judge = make_judge(f"vlm:openai:{url}/slow/v1", timeout=0.5)
    start = time.perf_counter()
    v = judge.judge(CASE, _img(1), [_img(2), _img(3)])
    assert time.perf_counter() - start < 2.5
    assert (v.judged, v.success) == (False, None)
    assert re.search(r"call failed: .*within 0.5s", v.reason), v.reason


def test_the_api_key_goes_to_the_named_endpoint(server, monkeypatch: pytest.MonkeyPatch):
    url, handler = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    handler.requests.clear()
    make_judge(f"vlm:openai:{url}/yes/v1").judge(CASE, _img(1), [_img(2)])
    assert handler.requests[0]["auth"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vlm:mini", "bad judge spec 'vlm:mini'"),
        ("vlm:", "bad judge spec 'vlm:'"),
        ("vlm:openai:ftp://x", "the URL must start with http"),
        ("gpt", "bad judge spec 'gpt'"),
        ("analyzer:x", "bad judge spec 'analyzer:x'"),
        ("", "empty judge spec"),
    ],
)
def test_bad_specs_name_themselves(spec: str, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_judge(spec)


def test_a_missing_qwen_folder_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        make_judge(f"vlm:qwen:{tmp_path / 'nowhere'}")


# --- the tiny random Qwen2.5-VL ---------------------------------------------------------------------------------------


def test_tiny_random_qwen_replies_are_unjudged_never_success(tmp_path: Path):
    from dreamomni2.planner.testing import build_tiny_qwen_vl

    folder = build_tiny_qwen_vl(tmp_path / "vlm")
    judge = make_judge(f"vlm:qwen:{folder}", device="cpu", max_new_tokens=16, max_area=64 * 64).prepare()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    verdicts = [judge.judge(CASE, images[0], images[1:]) for _ in range(2)]
    gen = SuiteCase("generate/x/1", "generate", "abstract", "x", ["a.png"], "A dog in the style of image 1.")
    verdicts.append(judge.judge(gen, images[0], images[1:2]))
    for v in verdicts:
        assert (v.judged, v.success) == (False, None)
        assert v.reason.startswith(("malformed reply", "empty reply")), v.reason
        assert v.raw is not None
