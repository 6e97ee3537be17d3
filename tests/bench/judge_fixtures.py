"""Tiny random CLIP and DINOv2 folders for the embedding judges' tests, built offline (random weights).

:func:`build_tiny_clip` saves a ``CLIPModel`` (32 px images, 8 px patches, width 32) with a ``CLIPProcessor`` whose
tokenizer is the character-level CLIP tokenizer of :func:`dreamomni2.testing.tiny_clip_tokenizer`;
:func:`build_tiny_dino` saves a ``Dinov2Model`` of the same size with a ``BitImageProcessor`` (DINOv2's), so that
``clip:DIR`` / ``dino:DIR`` load them through the real transformers code path. Their similarities mean nothing.

:func:`stub_judge_server` serves a stub OpenAI-compatible chat endpoint on 127.0.0.1 whose replies depend on the URL
path (good, malformed, refused, slow, failing, and a pairwise judge that prefers the brighter image).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

__all__ = ["STUB_REPLIES", "build_tiny_clip", "build_tiny_dino", "make_handler", "stub_judge_server"]


def _image_processor_kwargs(size: int) -> dict:
    return {"do_resize": True, "do_center_crop": True, "crop_size": {"height": size, "width": size}}


def build_tiny_clip(folder: str | os.PathLike, seed: int = 0, size: int = 32) -> Path:
    """Save a tiny random CLIP model and processor to ``folder`` (created)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from dreamomni2.testing import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}  # fmt: skip
    vision = {"image_size": size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": size}, **_image_processor_kwargs(size))
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return Path(folder)


def build_tiny_dino(folder: str | os.PathLike, seed: int = 0, size: int = 32) -> Path:
    """Save a tiny random DINOv2 model and its image processor to ``folder`` (created)."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(image_size=size, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config).eval()
    model.save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": size}, **_image_processor_kwargs(size)).save_pretrained(folder)
    return Path(folder)


# --- a stub OpenAI-compatible judge endpoint ------------------------------------------------------------------------

#: What the stub endpoint answers, by the first path segment of the URL (``http://127.0.0.1:PORT/<mode>/v1``).
STUB_REPLIES = {
    "yes": '{"verdict": "yes", "reason": "the instruction is followed"}',
    "no": 'Sure.\n{"verdict": "no", "reason": "image 1 changed"}',
    "lines": "VERDICT: yes\nREASON: looks right",
    "malformed": '{"verdict": "probably", "reason": "hard to say"}',
    "chatter": "The image shows a red circle on a light background.",
    "refused": "I'm sorry, but I can't help with evaluating these images.",
    "empty": "",
    "position-a": '{"winner": "A", "reason": "A looks better"}',
}


def _brightness(url: str) -> float:
    import base64
    import io

    import numpy as np
    from PIL import Image

    data = base64.b64decode(url.split(",", 1)[1])
    return float(np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64).mean())


def _brighter_reply(body: dict) -> str:
    """The pairwise answer of a judge that prefers the brighter of the last two images (A, B), in any order."""
    urls = [p["image_url"]["url"] for p in body["messages"][0]["content"] if p.get("type") == "image_url"]
    a, b = _brightness(urls[-2]), _brightness(urls[-1])
    winner = "tie" if a == b else "A" if a > b else "B"
    return json.dumps({"winner": winner, "reason": "brighter"})


def make_handler():
    """A fresh request-handler class answering by mode (see :data:`STUB_REPLIES`; also ``slow``: sleeps 3 s before
    answering yes, ``fail``: HTTP 500, ``brighter``: pairwise by brightness); it records each request."""
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        requests: list[dict] = []

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            """Record the request and answer by mode."""
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            mode = self.path.strip("/").split("/")[0]
            type(self).requests.append({"mode": mode, "body": body, "auth": self.headers.get("Authorization")})
            if mode == "fail":
                return self._send(500, b'{"error": {"message": "boom"}}')
            if mode == "slow":
                time.sleep(3)
            content = _brighter_reply(body) if mode == "brighter" else STUB_REPLIES.get(mode, STUB_REPLIES["yes"])
            reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
            try:
                self._send(200, json.dumps(reply).encode())
            except OSError:  # the client gave up (slow mode)
                pass

        def _send(self, code: int, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextlib.contextmanager
def stub_judge_server():
    """Serve a stub OpenAI-compatible endpoint on 127.0.0.1 (a free port); yields ``(base_url, handler_class)``."""
    from http.server import ThreadingHTTPServer

    handler = make_handler()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
