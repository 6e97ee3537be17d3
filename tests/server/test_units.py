"""The server's pure parts, in process: field parsing, error mapping, decoding, the bind rule, the queue."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from PIL import Image

from dreamomni2.server.config import ServerConfig
from dreamomni2.server.decode import data_url_bytes, decode_image
from dreamomni2.server.errors import ApiError, from_request_error
from dreamomni2.server.fields import build_request
from dreamomni2.server.jobs import QueueFull, WorkQueue
from dreamomni2.server.metrics import Metrics, percentile
from dreamomni2.server.security import check_bearer, check_bind, is_loopback
from tests.server.conftest import data_url, png_bytes

PLANNERS = frozenset({"none", "mini"})


def test_fields_become_a_checked_request():
    image = Image.new("RGB", (32, 32), "red")
    fields = {"prompt": "x", "n": "2", "size": "48x32", "steps": " 7 ", "guidance": "2.5", "seed": "11"}
    fields.update(planner="none", model="anything", output_format="PNG", response_format="b64_json")
    r = build_request(fields, [image], "edit", PLANNERS)
    assert (r.task, r.n, r.size, r.steps, r.guidance, r.seed, r.plan) == ("edit", 2, (48, 32), 7, 2.5, 11, False)
    assert r.instruction == "x" and r.images == [image]
    typed = build_request({"prompt": "x", "n": 1, "steps": 3, "task": "generation", "size": "auto"}, [], "edit",
                          PLANNERS)  # fmt: skip
    assert (typed.task, typed.steps, typed.size, typed.plan) == ("generate", 3, None, True)


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"prompt": "x", "steps": "0"}, "steps", "steps must be between 1 and 150, got 0"),
        ({"prompt": "x", "steps": 2.5}, "steps", "steps must be an integer, got 2.5"),
        ({"prompt": "x", "planner": "qwen:/models/x"}, "planner", "not offered by this server"),
        ({"prompt": "x", "task": None, "images": 1}, "images", "unknown field 'images'"),
        ({"prompt": ""}, "prompt", "prompt is empty; say what to do"),
    ],
)
def test_field_errors_name_the_field(fields, param, message):
    with pytest.raises(ApiError) as e:
        build_request(fields, [Image.new("RGB", (32, 32))], "edit", PLANNERS)
    assert e.value.status == 400 and e.value.param == param and message in e.value.message
    assert e.value.body()["error"] == {"message": e.value.message, "type": "invalid_request_error", "param": param,
                                       "code": e.value.code}  # fmt: skip


def test_request_errors_map_to_http_fields():
    e = from_request_error(ValueError("Request.images[2] is a str, not a PIL image"), {"images": "image"})
    assert (e.param, e.message) == ("image", "image[2] is a str, not a PIL image")
    e = from_request_error(ValueError("Request.instruction is empty; say what to do"), {"instruction": "prompt"})
    assert (e.param, e.message) == ("prompt", "prompt is empty; say what to do")
    plain = from_request_error(ValueError("something else"), {})
    assert plain.param is None and plain.message == "something else"
    assert ApiError(429, "full").body()["error"]["type"] == "rate_limit_error"
    assert ApiError(504, "late").body()["error"]["type"] == "timeout_error"


def test_decoding_uses_the_cli_rules():
    image = decode_image(png_bytes(Image.new("RGB", (40, 20), "blue")), "image[0]")
    assert image.size == (40, 20) and image.mode == "RGB"
    with pytest.raises(ApiError, match=r"image\[1\]: not an image file in an accepted format") as e:
        decode_image(b"%!PS-Adobe-3.0\n", "image[1]")  # PostScript is never handed to a decoder
    assert e.value.param == "image[1]"
    with pytest.raises(ApiError, match="40x20 px is above the limit of 100 pixels"):
        decode_image(png_bytes(Image.new("RGB", (40, 20))), "image[0]", max_pixels=100)
    assert data_url_bytes(data_url(Image.new("RGB", (4, 4))), "images[0]")[:4] == b"\x89PNG"
    assert data_url_bytes("data:image/png;base64,iVBO\nRw0K", "images[0]") == b"\x89PNG\r\n"
    for bad, message in [
        ("file:///etc/passwd", "base64 data URL"),
        ("http://x/a.png", "fetches nothing"),
        (3, "a data URL string"),
    ]:
        with pytest.raises(ApiError, match=message):
            data_url_bytes(bad, "images[0]")


def test_bind_rule_and_bearer():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.5"))
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "key")
    with pytest.raises(ValueError, match="--host 0.0.0.0 is reachable from other machines"):
        check_bind("0.0.0.0", None)
    assert check_bearer(None, None) and check_bearer("Bearer k", "k") and check_bearer("bearer  k ", "k")
    assert not any(check_bearer(h, "k") for h in (None, "", "k", "Bearer", "Bearer kk", "Basic k"))
    with pytest.raises(ValueError, match="--queue"):
        ServerConfig(queue=0)
    with pytest.raises(ValueError, match="--api-key is empty"):
        ServerConfig(api_key=" ")


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)
    assert percentile([], 50) is None and percentile([3.0], 95) == 3.0


def _request(seed: int):
    from dreamomni2.request import Request

    return Request("generate", [], "x", seed=seed)


def test_queue_is_fifo_serialized_bounded_and_withdraws():
    ran, active, peak = [], [0], [0]
    gate = threading.Event()
    lock = threading.Lock()

    def run(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        gate.wait(5)
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        ran.append(request.seed)
        return request.seed

    async def scenario():
        metrics = Metrics()
        queue = WorkQueue(run, max_waiting=2, metrics=metrics)
        queue.start()
        deadline = time.monotonic() + 30
        first = queue.submit(_request(0), deadline)
        while queue.running is None:
            await asyncio.sleep(0.001)
        second, third = queue.submit(_request(1), deadline), queue.submit(_request(2), deadline)
        with pytest.raises(QueueFull):
            queue.submit(_request(3), deadline)
        queue.cancel(second)  # withdrawn while waiting: never runs
        fourth = queue.submit(_request(4), deadline)
        gate.set()
        results = [await first.future, await third.future, await fourth.future]
        await queue.stop()
        return results, second, metrics

    results, second, metrics = asyncio.run(scenario())
    assert results == ran == [0, 2, 4] and peak[0] == 1 and second.future.cancelled()
    assert metrics.jobs == {"submitted": 4, "started": 3, "completed": 3, "rejected_full": 1, "cancelled_waiting": 1}
    assert metrics.peak_depth == 2
