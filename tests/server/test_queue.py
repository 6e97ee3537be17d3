"""The queue under pressure: 429 at once when full, a disconnected client's job never runs, the deadline (504),
a bounded load test; and the start-up refusal of a non-loopback bind without a key."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from tests.server.conftest import KEYED_QUEUE, data_url, decoded, httpx, raw_send, read_response, serve_command
from tests.server.conftest import server_env as env

#: An edit with five references, eight images, 150 steps: ~10 s on one CPU thread, far past the 4 s deadline.
SLOW = {
    "prompt": "a red circle",
    "planner": "none",
    "steps": 150,
    "n": 8,
    "images": [data_url(Image.new("RGB", (32, 32), c)) for c in ("red", "blue", "green", "white", "black")],
}


def raw_post(server, path: str, body: dict) -> socket.socket:
    """A JSON POST on a raw socket, unread."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), "Connection": "close"}
    return raw_send(server, path, headers, data)


def wait_for(server, check, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = server.metrics()
        if check(m):
            return m
        time.sleep(0.02)
    raise AssertionError(f"metrics never matched: {m}")


def test_full_queue_429_disconnect_and_deadline(keyed_server):
    before = keyed_server.metrics()["jobs"]
    running = raw_post(keyed_server, "/v1/images/edits", SLOW)
    wait_for(keyed_server, lambda m: m["queue"]["running"] == 1)
    waiting = raw_post(keyed_server, "/v1/images/edits", SLOW)
    wait_for(keyed_server, lambda m: m["queue"]["depth"] == KEYED_QUEUE)

    start = time.monotonic()
    full = httpx.post(f"{keyed_server.url}/v1/images/edits", json=SLOW, headers=keyed_server.headers())
    assert full.status_code == 429 and time.monotonic() - start < 2.0  # at once, never hanging
    assert int(full.headers["retry-after"]) >= 1
    assert full.json()["error"]["code"] == "queue_full" and "queue is full" in full.json()["error"]["message"]

    waiting.close()  # the client goes away while its job waits: the job is withdrawn, never run
    cancelled = before.get("cancelled_waiting", 0) + 1
    m = wait_for(keyed_server, lambda m: m["jobs"].get("cancelled_waiting", 0) == cancelled)
    assert m["queue"]["depth"] == 0

    status, text = read_response(running)  # the running job passes the 4 s deadline: 504, stopped mid-way
    assert status == 504 and "deadline" in text and '"type":"timeout_error"' in text.replace(" ", "")
    m = wait_for(keyed_server, lambda m: m["queue"]["running"] == 0)
    jobs = m["jobs"]
    assert jobs["started"] == before.get("started", 0) + 1  # only the first one ever ran
    assert jobs.get("aborted_running", 0) == before.get("aborted_running", 0) + 1
    assert jobs.get("completed", 0) == before.get("completed", 0)
    assert m["requests"].get("499", 0) >= 1 and m["requests"]["429"] >= 1 and m["requests"]["504"] >= 1
    assert m["queue"]["peak"] <= KEYED_QUEUE

    quick = httpx.post(f"{keyed_server.url}/v1/images/generations", headers=keyed_server.headers(), timeout=30,
                       json={"prompt": "a red circle", "planner": "none", "steps": 2})  # fmt: skip
    assert quick.status_code == 200  # the worker is healthy after the abort


CLIENTS, PER_CLIENT, LOAD_STEPS = 16, 3, 4


def _generate(client, images, seed: int) -> dict:
    body = {"prompt": "Replace the object in image 1 with the object from image 2.", "seed": seed,
            "steps": LOAD_STEPS, "task": "edit", "images": images}  # fmt: skip
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_load_none_lost_or_duplicated(open_server):
    from dreamomni2.mini.world import make_cases, render

    case = next(c for c in make_cases(1, 40, paraphrase=False) if c.kind == "replace")
    images = [data_url(render(s)) for s in case.images]
    seeds = [1000 + i for i in range(CLIENTS * PER_CLIENT)]
    with open_server.client() as c:  # one at a time first: the single-request result of every seed
        reference = {s: _generate(c, images, s)["data"][0]["b64_json"] for s in seeds}
    rss_before = open_server.metrics()["rss_bytes"]
    depths, done = [], threading.Event()

    def watch():
        while not done.is_set():
            depths.append(open_server.metrics()["queue"]["depth"])
            time.sleep(0.05)

    def client_run(k: int) -> list[dict]:
        with open_server.client() as c:
            return [_generate(c, images, s) for s in seeds[k::CLIENTS]]

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [a for batch in pool.map(client_run, range(CLIENTS)) for a in batch]
    finally:
        done.set()
        watcher.join()
    assert sorted(a["seed"] for a in answers) == seeds  # none lost, none duplicated
    assert all(a["data"][0]["b64_json"] == reference[a["seed"]] for a in answers)
    assert decoded(answers[0]["data"][0]["b64_json"]).size == (32, 32)
    m = open_server.metrics()
    assert max(depths) <= m["queue"]["max"] and m["queue"]["peak"] <= m["queue"]["max"] == 16
    assert max(depths) >= 2  # the clients really were concurrent
    assert "429" not in m["requests"] and m["queue"]["depth"] == 0
    if rss_before:
        assert m["rss_bytes"] <= rss_before * 1.10, (rss_before, m["rss_bytes"])


def test_non_loopback_without_key_is_refused_at_start():
    for host in ("0.0.0.0", "::"):
        proc = subprocess.run(serve_command("--host", host, "--port", "0"), capture_output=True, text=True,
                              env=env(), timeout=60)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "refusing to serve it without an API key" in lines[0]
        assert f"--host {host}" in lines[0] and "--api-key" in lines[0] and proc.stdout == ""
