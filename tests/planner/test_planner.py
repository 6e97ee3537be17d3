"""Instruction planner: reply parsing, the tiny Qwen2.5-VL through transformers, the OpenAI backend."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from dreamomni2.planner import (
    NonePlanner,
    OpenAIPlanner,
    PlannedPrompt,
    PlannerError,
    QwenPlanner,
    build_user_text,
    make_planner,
    parse_reply,
    prepare_planner_images,
)
from dreamomni2.resize import reference_size

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

INSTRUCTION = "Make the cat wear the hat from image 2."
SMALL_AREA = 64 * 64  # keeps the Kontext resize cheap; the Qwen processor resizes again anyway


def _image(width: int, height: int, seed: int) -> Image.Image:
    """A random RGB image."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# --- user text, tasks ------------------------------------------------------------------------


def test_build_user_text_is_the_release_suffix():
    assert build_user_text("Make it red.", "edit") == "Make it red. It is editing task."
    assert build_user_text("A cat.", "generate") == "A cat. It is generation task."
    assert build_user_text("A cat.  ", "generation") == "A cat.   It is generation task."  # verbatim, no strip
    with pytest.raises(ValueError, match="'edit' or 'generate'"):
        build_user_text("x", "inpaint")


def test_none_planner_returns_the_instruction():
    out = NonePlanner().plan([_image(32, 32, 0)], INSTRUCTION, "edit")
    assert out == PlannedPrompt(INSTRUCTION, "", "none", False)
    with pytest.raises(ValueError, match="task"):
        NonePlanner().plan([], INSTRUCTION, "bogus")


def test_prepare_planner_images_uses_the_kontext_rule():
    imgs = [_image(100, 60, 0), _image(40, 90, 1).convert("L")]
    out = prepare_planner_images(imgs, max_area=SMALL_AREA)
    expected = [reference_size(100, 60, max_area=SMALL_AREA), reference_size(40, 90, max_area=SMALL_AREA)]
    assert [im.size for im in out] == expected
    assert all(im.mode == "RGB" for im in out)
    assert prepare_planner_images([_image(64, 64, 0)])[0].size == (1024, 1024)


# --- parse_reply -----------------------------------------------------------------------------

PARSE_CASES = [
    ("<gen>A cat wearing the hat from image 2.</gen>", "A cat wearing the hat from image 2.", False),
    ("<edit>Replace the dog with the cat in image 2.</edit>", "Replace the dog with the cat in image 2.", False),
    ("<gen>A red car on a beach.</gen><|im_end|>", "A red car on a beach.", False),
    ("<|im_start|>assistant\n<gen>A dog.</gen><|im_end|><|endoftext|>", "A dog.", False),
    ("\n  <gen>  A bird in the style of image 2. </gen>\n\n", "A bird in the style of image 2.", False),
    ("A plain unwrapped prompt.", "A plain unwrapped prompt.", False),
    ("<gen>An unclosed wrapper", "An unclosed wrapper", False),
    ("A stray closing tag.</gen>", "A stray closing tag.", False),
    ("<prompt>Nested <answer>tags</answer></prompt>", "Nested tags", False),
    ("<caption>Any single pair wrapping the whole reply</caption>", "Any single pair wrapping the whole reply", False),
    ('"A quoted prompt."', "A quoted prompt.", False),
    ('<gen>"Quoted inside tags"</gen>', "Quoted inside tags", False),
    ("```\n<gen>A fenced prompt.</gen>\n```", "A fenced prompt.", False),
    ("```text\nFenced, no tags.\n```", "Fenced, no tags.", False),
    ('The "hat" from image 2 on the "cat".', 'The "hat" from image 2 on the "cat".', False),
    ("Sure! <prompt>A cat in a hat.</prompt> Hope it helps.", "A cat in a hat.", False),
    ("", INSTRUCTION, True),
    ("   \n\t ", INSTRUCTION, True),
    ("<gen></gen>", INSTRUCTION, True),
    ("<edit> \n </edit><|im_end|>", INSTRUCTION, True),
    ("<|im_end|>", INSTRUCTION, True),
    ('""', INSTRUCTION, True),
]


@pytest.mark.parametrize(("reply", "expected", "fell_back"), PARSE_CASES)
def test_parse_reply(reply: str, expected: str, fell_back: bool, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="dreamomni2.planner.base"):
        assert parse_reply(reply, INSTRUCTION) == (expected, fell_back)
    assert any("no prompt" in r.getMessage() for r in caplog.records) == fell_back


def test_parse_reply_does_not_slice_fixed_counts():
    # The release's reply[6:-7] would eat text here; pattern-based parsing keeps it.
    assert parse_reply("Short", INSTRUCTION) == ("Short", False)
    assert parse_reply("<p>Tiny</p>", INSTRUCTION) == ("Tiny", False)
    assert parse_reply(None, INSTRUCTION) == (INSTRUCTION, True)


# --- tiny Qwen2.5-VL through transformers ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from dreamomni2.planner.testing import build_tiny_qwen_vl

    return build_tiny_qwen_vl(tmp_path_factory.mktemp("vlm-model"))


@pytest.fixture(scope="module")
def qwen(tiny_vlm_dir: str) -> QwenPlanner:
    return QwenPlanner(tiny_vlm_dir, device="cpu", max_new_tokens=12, max_area=SMALL_AREA).load()


def test_tiny_folder_loads_like_the_release(tiny_vlm_dir: str):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_vlm_dir, local_files_only=True)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert processor.video_processor is not None
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_vlm_dir, local_files_only=True)
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")


def test_build_messages_order(qwen: QwenPlanner):
    imgs = [_image(64, 48, 1), _image(48, 64, 2), _image(80, 80, 3)]
    msgs = qwen.build_messages(imgs, INSTRUCTION, "generate")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    content = msgs[0]["content"]
    assert [c["type"] for c in content] == ["image", "image", "image", "text"]
    assert all(c["image"] is img for c, img in zip(content[:3], imgs, strict=True))
    assert content[-1]["text"] == INSTRUCTION + " It is generation task."
    edit = qwen.build_messages(imgs[:1], INSTRUCTION, "edit")[0]["content"]
    assert edit[-1] == {"type": "text", "text": INSTRUCTION + " It is editing task."}


def test_one_vision_span_per_image_in_order(qwen: QwenPlanner):
    # Different aspect ratios give different grids, so the span order shows the image order.
    imgs = prepare_planner_images([_image(96, 48, 1), _image(48, 96, 2), _image(64, 64, 3)], max_area=SMALL_AREA)
    inputs = qwen.build_inputs(imgs, INSTRUCTION, "edit")
    tok = qwen.processor.tokenizer
    ids = inputs["input_ids"][0].tolist()
    start, end, pad = (tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>"))
    assert ids.count(start) == ids.count(end) == len(imgs)
    merge = qwen.processor.image_processor.merge_size
    expected = [int(g.prod()) // merge**2 for g in inputs["image_grid_thw"]]
    assert len(set(expected)) > 1
    spans, i = [], 0
    while start in ids[i:]:
        s = ids.index(start, i)
        e = ids.index(end, s)
        assert set(ids[s + 1 : e]) == {pad}
        spans.append(e - s - 1)
        i = e + 1
    assert spans == expected and ids.count(pad) == sum(expected)
    text = tok.decode(ids[i:])  # the text comes after the last image
    assert (INSTRUCTION + " It is editing task.<|im_end|>") in text
    assert text.endswith("<|im_start|>assistant\n")


def test_qwen_plan_is_greedy_and_returns_a_planned_prompt(qwen: QwenPlanner):
    imgs = [_image(64, 48, 1), _image(48, 64, 2)]
    first = qwen.plan(imgs, INSTRUCTION, "edit")
    assert first == qwen.plan(imgs, INSTRUCTION, "edit") and first.backend == "qwen"  # deterministic
    assert (first.prompt, first.fell_back) == parse_reply(first.raw_reply, INSTRUCTION)


@pytest.mark.parametrize(
    ("reply", "prompt", "fell_back"),
    [("<edit>Make it blue.</edit>", "Make it blue.", False), ("<edit></edit>", INSTRUCTION, True)],
)
def test_qwen_decodes_only_new_tokens_greedily(qwen: QwenPlanner, monkeypatch, reply, prompt, fell_back):
    """generate() is called greedily; only the tokens after the prompt are decoded and parsed."""
    import torch

    seen = {}
    new = qwen.processor.tokenizer(reply, add_special_tokens=False, return_tensors="pt").input_ids

    def fake_generate(input_ids, **kwargs):
        seen.update(kwargs)
        return torch.cat([input_ids, new], dim=1)

    monkeypatch.setattr(qwen.model, "generate", fake_generate)
    out = qwen.plan([_image(64, 48, 1)], INSTRUCTION, "edit")
    assert seen["do_sample"] is False and seen["max_new_tokens"] == qwen.max_new_tokens
    assert (out.raw_reply, out.prompt, out.fell_back) == (reply, prompt, fell_back)


def test_qwen_plan_without_images_and_offload(qwen: QwenPlanner):
    out = qwen.plan([], "A cat.", "generate")
    assert isinstance(out.prompt, str) and out.backend == "qwen"
    qwen.offload()
    assert qwen.model.device.type == "cpu"


def test_missing_vlm_folder_names_it(tmp_path):
    missing = tmp_path / "no-such-vlm"
    with pytest.raises(FileNotFoundError, match="no-such-vlm"):
        QwenPlanner(missing)
    empty = tmp_path / "empty-vlm"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty-vlm.*config\.json"):
        make_planner(f"qwen:{empty}")


def test_release_root_with_vlm_model_subfolder(tiny_vlm_dir: str, tmp_path):
    root = tmp_path / "release"
    root.mkdir()
    (root / "vlm-model").symlink_to(tiny_vlm_dir, target_is_directory=True)
    assert QwenPlanner(root).model_dir == str(root / "vlm-model")


# --- OpenAI-compatible backend ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Answers by path prefix: /good, /fail (HTTP 500), /bad (not JSON), /empty (no content), /error."""

    requests: list[dict] = []

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""

    def do_POST(self) -> None:
        """Record the request and answer according to the path."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        mode = self.path.strip("/").split("/")[0]
        if mode == "fail":
            self._send(500, b'{"error": {"message": "boom"}}')
        elif mode == "bad":
            self._send(200, b"this is not json")
        elif mode == "empty":
            self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": None}}]}).encode())
        elif mode == "error":
            self._send(200, json.dumps({"error": {"message": "model not found"}}).encode())
        elif mode == "huge":
            self._send(200, b" " * (5 * 1024 * 1024))
        elif mode == "trickle":  # one byte every 0.2 s: each socket read succeeds, the whole call never ends
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        else:
            reply = {"choices": [{"message": {"role": "assistant", "content": "<gen>A cat in a red hat.</gen>"}}]}
            self._send(200, json.dumps(reply).encode())

    def _send(self, code: int, payload: bytes) -> None:
        """Send a JSON-typed response."""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _decode_data_url(url: str) -> Image.Image:
    """The image inside a PNG data URL."""
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def test_openai_request_and_good_reply(server: str):
    _Handler.requests.clear()
    imgs = [_image(96, 48, 1), _image(48, 96, 2)]
    planner = OpenAIPlanner(server + "/good/v1/", model="dreamomni2-vlm", api_key="k", timeout=5, max_area=SMALL_AREA)
    out = planner.plan(imgs, INSTRUCTION, "edit")
    assert out == PlannedPrompt("A cat in a red hat.", "<gen>A cat in a red hat.</gen>", "openai", False)
    (req,) = _Handler.requests
    assert req["path"] == "/good/v1/chat/completions" and req["auth"] == "Bearer k"
    body = req["body"]
    assert body["temperature"] == 0 and body["model"] == "dreamomni2-vlm" and body["max_tokens"] == 256
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    parts = msg["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[-1]["text"] == INSTRUCTION + " It is editing task."
    expected = prepare_planner_images(imgs, max_area=SMALL_AREA)
    for part, want in zip(parts[:2], expected, strict=True):
        got = _decode_data_url(part["image_url"]["url"])
        assert got.size == want.size and np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want))


def test_openai_http_500(server: str):
    with pytest.raises(PlannerError, match="HTTP 500") as info:
        OpenAIPlanner(server + "/fail/v1", timeout=5).plan([], INSTRUCTION, "generate")
    assert "\n" not in str(info.value)


def test_openai_malformed_json(server: str):
    with pytest.raises(PlannerError, match="malformed JSON"):
        OpenAIPlanner(server + "/bad/v1", timeout=5).plan([], INSTRUCTION, "generate")
    with pytest.raises(PlannerError, match="model not found"):
        OpenAIPlanner(server + "/error/v1", timeout=5).plan([], INSTRUCTION, "generate")


def test_openai_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PlannerError, match="Cannot reach"):
        OpenAIPlanner(f"http://127.0.0.1:{port}/v1", timeout=5).plan([], INSTRUCTION, "generate")


def test_openai_missing_content_falls_back(server: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="dreamomni2.planner"):
        out = OpenAIPlanner(server + "/empty/v1", timeout=5).plan([], INSTRUCTION, "generate")
    assert out == PlannedPrompt(INSTRUCTION, "", "openai", True)
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_openai_api_key_from_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert OpenAIPlanner("http://127.0.0.1:1/v1").api_key == "from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIPlanner("http://127.0.0.1:1/v1").api_key is None


# --- make_planner ----------------------------------------------------------------------------


def test_make_planner_specs(tiny_vlm_dir: str):
    assert isinstance(make_planner("none"), NonePlanner)
    assert isinstance(make_planner("none", device="cuda", max_new_tokens=8), NonePlanner)
    q = make_planner(f"qwen:{tiny_vlm_dir}", device="cpu", dtype="float32", max_new_tokens=7, timeout=3)
    assert isinstance(q, QwenPlanner) and q.max_new_tokens == 7 and not q.loaded
    o = make_planner("openai:http://127.0.0.1:8000/v1", max_new_tokens=9, device="cuda")
    assert isinstance(o, OpenAIPlanner) and o.model == "default" and o.max_tokens == 9
    assert o.url == "http://127.0.0.1:8000/v1/chat/completions"
    o = make_planner("openai:https://host/v1#my-model", timeout=3)
    assert o.model == "my-model" and o.timeout == 3


@pytest.mark.parametrize("spec", ["", "qwen", "qwen:", "openai:", "openai:ftp://x", "gpt4", "none:x", "openai"])
def test_make_planner_bad_spec(spec: str):
    with pytest.raises(ValueError, match="spec"):
        make_planner(spec)


def test_make_planner_unknown_option():
    with pytest.raises(TypeError, match="temprature"):
        make_planner("none", temprature=0)


@pytest.fixture(scope="module")
def old_known_pair():
    import re

    from dreamomni2.planner import base

    return re.compile(rf"<({'|'.join(base._KNOWN_TAGS)})>(.*?)</\1>", re.IGNORECASE | re.DOTALL)


def test_first_known_pair_equals_the_lazy_regex(old_known_pair):
    """The linear-time pair finder finds what the (quadratic) lazy regex found, on strings made of tag pieces."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dreamomni2.planner.base import _first_known_pair

    pieces = st.sampled_from(["<gen>", "</gen>", "<EDIT>", "</edit>", "<prompt>", "</Prompt>", "a", " ", "\n", "<x>"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(pieces, max_size=14).map("".join))
    def check(text):
        m = old_known_pair.search(text)
        assert _first_known_pair(text) == (m.group(2) if m else None)

    check()


def test_huge_or_tag_flooded_replies_fall_back(caplog):
    from dreamomni2.planner.base import MAX_REPLY_CHARS

    assert parse_reply("<gen>" * 13000, "instr") == ("instr", True)  # 65 KB of openings: linear, no prompt
    assert parse_reply("x" * (MAX_REPLY_CHARS + 1), "instr") == ("instr", True)
    assert "over the 65536 limit" in caplog.text
    assert parse_reply("<gen>Make it red.</gen>" + "<gen>" * 10000, "i") == ("Make it red.", False)


def test_endpoint_reply_is_bounded_in_time_and_size(server):
    trickle = OpenAIPlanner(f"{server}/trickle/v1", timeout=1.0)
    start = time.monotonic()
    with pytest.raises(PlannerError, match=r"no complete reply within 1s"):
        trickle.plan([], "A cat.", "generate")
    assert time.monotonic() - start < 3  # the whole call, not each socket read
    with pytest.raises(PlannerError, match="sent more than 4194304 bytes"):
        OpenAIPlanner(f"{server}/huge/v1", timeout=10).plan([], "A cat.", "generate")
