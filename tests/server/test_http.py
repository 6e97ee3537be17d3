"""The server over real HTTP: happy paths, every bad request with its status and message, auth, 413."""

from __future__ import annotations

import pytest

from tests.server.conftest import API_KEY, MAX_BODY, data_url, decoded, httpx, png_bytes, raw_send, read_response


@pytest.fixture(scope="module")
def replace_case():
    from dreamomni2.mini.world import make_cases

    return next(c for c in make_cases(0, 40, paraphrase=False) if c.kind == "replace")


@pytest.fixture(scope="module")
def case_images(replace_case):
    from dreamomni2.mini.world import render

    return [render(s) for s in replace_case.images]


def edit_files(images, key: str = "image[]") -> list:
    return [(key, (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images)]


def edit(server, images, **data):
    with server.client() as c:
        return c.post("/v1/images/edits", files=edit_files(images), data={k: str(v) for k, v in data.items()})


def test_edit_happy_path(open_server, replace_case, case_images):
    from dreamomni2.mini.analyzer import score

    r = edit(open_server, case_images, prompt=replace_case.instruction, seed=7, size="32x32")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 1 and body["seed"] == 7
    assert body["data"][0]["revised_prompt"] == replace_case.prompt  # the mini planner's canonical prompt
    assert body["planner"] == {"backend": "mini", "fell_back": False} and body["settings"]["steps"] == 20
    image = decoded(body["data"][0]["b64_json"])
    assert image.size == (32, 32) and body["size"] == "32x32"
    assert score(replace_case, image)["success"], score(replace_case, image)
    again = edit(open_server, case_images, prompt=replace_case.instruction, seed=7, size="32x32")
    assert again.json()["data"][0]["b64_json"] == body["data"][0]["b64_json"]  # same seed, same bytes
    other = edit(open_server, case_images, prompt=replace_case.instruction, seed=8, size="32x32")
    assert other.json()["seed"] == 8


def test_edit_accepts_image_and_indexed_keys_and_reports_a_random_seed(open_server, replace_case, case_images):
    with open_server.client() as c:
        files = [("image", ("a.png", png_bytes(case_images[0]), "image/png"))]
        files += [(f"image[{i}]", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(case_images[1:])]
        r = c.post("/v1/images/edits", files=files, data={"prompt": replace_case.instruction, "planner": "none",
                                                           "steps": "3"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["seed"], int) and body["planner"]["backend"] == "none"
    assert body["data"][0]["revised_prompt"] == replace_case.instruction and body["settings"]["steps"] == 3


def test_generations_json_and_multipart(open_server, case_images):
    payload = {"prompt": "Generate the object from image 1 on a light background.", "n": 2, "size": "32x32",
               "seed": 3, "steps": 4, "guidance": 3.0, "images": [data_url(im) for im in case_images[:2]],
               "response_format": "b64_json", "model": "dreamomni2-mini"}  # fmt: skip
    with open_server.client() as c:
        r = c.post("/v1/images/generations", json=payload)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) == 2 and body["seed"] == 3 and body["settings"]["task"] == "generate"
        assert [decoded(d["b64_json"]).size for d in body["data"]] == [(32, 32), (32, 32)]
        assert body["settings"]["guidance"] == 3.0
        wrapped = dict(payload, images=[{"image_url": u} for u in payload["images"]])
        assert c.post("/v1/images/generations", json=wrapped).json()["data"] == body["data"]
        form = {k: str(v) for k, v in payload.items() if k != "images"}
        multi = c.post("/v1/images/generations", data=form, files=edit_files(case_images[:2]))
        assert multi.status_code == 200 and multi.json()["data"] == body["data"]
        unplannable = c.post("/v1/images/generations", json=dict(payload, prompt="paint something nice"))
        assert unplannable.status_code == 400 and unplannable.json()["error"]["param"] == "prompt"
        assert "mini planner" in unplannable.json()["error"]["message"]
        text_only = c.post("/v1/images/generations", json={"prompt": "a red circle", "planner": "none", "steps": 2})
        assert text_only.status_code == 200 and decoded(text_only.json()["data"][0]["b64_json"]).size == (32, 32)


def test_openai_client(open_server, replace_case, case_images, tmp_path):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{open_server.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["dreamomni2-mini"]
    paths = []
    for i, im in enumerate(case_images):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    files = [p.open("rb") for p in paths]
    try:
        result = client.images.edit(model="dreamomni2-mini", image=files, prompt=replace_case.instruction,
                                    size="32x32", extra_body={"seed": 7})  # fmt: skip
    finally:
        for f in files:
            f.close()
    expected = edit(open_server, case_images, prompt=replace_case.instruction, seed=7, size="32x32").json()
    assert result.data[0].b64_json == expected["data"][0]["b64_json"]
    assert result.data[0].revised_prompt == replace_case.prompt and result.model_extra["seed"] == 7
    with pytest.raises(openai.BadRequestError, match="steps must be between 1 and 150"):
        client.images.edit(image=paths[0].read_bytes(), prompt="x", extra_body={"steps": 0})


def test_models_health_metrics(open_server):
    with open_server.client() as c:
        health = c.get("/health").json()
        assert health["status"] == "ok" and health["loaded"] is True
        models = c.get("/v1/models").json()
        assert models["object"] == "list" and models["data"][0]["id"] == "dreamomni2-mini"
        metrics = c.get("/metrics").json()
        assert {"queue", "requests", "jobs", "latency_seconds"} <= set(metrics)
        assert metrics["queue"]["max"] == 16 and metrics["queue"]["depth"] == 0
        missing = c.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


def _six(images):
    return images + images[:3]


NOT_AN_IMAGE = [("image[]", ("notes.png", b"%!PS-Adobe-3.0\nthis is not an image", "image/png"))]

# (id, fields, images (from the case's), status, param, message)
BAD_EDITS = [
    ("missing prompt", {}, None, 400, "prompt", "prompt is required"),
    ("empty prompt", {"prompt": "  "}, None, 400, "prompt", "prompt is empty"),
    ("six images", {"prompt": "x"}, _six, 400, "image", "got 6 images; at most 5 are supported"),
    ("no image", {"prompt": "x"}, lambda ims: [], 400, "image", "an edit needs at least one image"),
    ("steps 0", {"prompt": "x", "steps": "0"}, None, 400, "steps", "steps must be between 1 and 150, got 0"),
    ("steps 151", {"prompt": "x", "steps": "151"}, None, 400, "steps", "steps must be between 1 and 150, got 151"),
    ("steps text", {"prompt": "x", "steps": "many"}, None, 400, "steps", "steps must be an integer, got 'many'"),
    ("size 0x0", {"prompt": "x", "size": "0x0"}, None, 400, "size", "size must be between 16 and 4096, got 0"),
    ("size word", {"prompt": "x", "size": "big"}, None, 400, "size", "size must be 'WIDTHxHEIGHT'"),
    ("n 0", {"prompt": "x", "n": "0"}, None, 400, "n", "n must be between 1 and 8, got 0"),
    ("n 9", {"prompt": "x", "n": "9"}, None, 400, "n", "n must be between 1 and 8, got 9"),
    ("n text", {"prompt": "x", "n": "two"}, None, 400, "n", "n must be an integer, got 'two'"),
    ("seed -1", {"prompt": "x", "seed": "-1"}, None, 400, "seed", "seed must be between 0 and"),
    ("guidance nan", {"prompt": "x", "guidance": "nan"}, None, 400, "guidance", "guidance must be a finite number"),
    ("unknown task", {"prompt": "x", "task": "paint"}, None, 400, "task", "Unknown task 'paint'"),
    ("url format", {"prompt": "x", "response_format": "url"}, None, 400, "response_format", "'url' is not supported"),
    (
        "remote planner",
        {"prompt": "x", "planner": "openai:http://example.com"},
        None,
        400,
        "planner",
        "is not offered by this server; use 'mini' or 'none'",
    ),
    ("unknown field", {"prompt": "x", "colour": "red"}, None, 400, "colour", "unknown field 'colour'"),
    ("webp output", {"prompt": "x", "output_format": "webp"}, None, 400, "output_format", "only 'png'"),
    ("long prompt", {"prompt": "x" * 4001}, None, 400, "prompt", "prompt has 4001 characters; the limit is 4000"),
]


@pytest.mark.parametrize(("fields", "images", "status", "param", "message"), [c[1:] for c in BAD_EDITS],
                         ids=[c[0] for c in BAD_EDITS])  # fmt: skip
def test_bad_edits_name_the_field(open_server, case_images, fields, images, status, param, message):
    parts = edit_files(images(case_images) if images else case_images[:1])
    parts += [(k, (None, v)) for k, v in fields.items()]  # text parts: always a multipart body
    with open_server.client() as c:
        r = c.post("/v1/images/edits", files=parts)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert message in error["message"], error["message"]


def test_bad_uploads_and_bodies(open_server):
    with open_server.client() as c:
        r = c.post("/v1/images/edits", data={"prompt": "x"}, files=NOT_AN_IMAGE)
        assert r.status_code == 400 and r.json()["error"]["param"] == "image[0]"
        assert "not an image file in an accepted format" in r.json()["error"]["message"]
        r = c.post("/v1/images/edits", files=[("prompt", (None, "x")), ("image", (None, "not a file"))])
        assert r.status_code == 400 and "must be a file upload" in r.json()["error"]["message"]
        cases = [
            ({"prompt": "x", "images": ["https://example.com/a.png"]}, "images[0]", "only data: URLs are accepted"),
            ({"prompt": "x", "images": ["data:image/png;base64,@@@"]}, "images[0]", "base64 is malformed"),
            ({"prompt": "x", "images": "data:,"}, "images", "images must be a list of data URLs"),
            ({"prompt": 3}, "prompt", "prompt must be a string"),
            ({"prompt": "x", "n": True}, "n", "n must be an integer"),
            ({"prompt": "x", "stream": True}, "stream", "only 'false'"),
        ]
        for body, param, message in cases:
            r = c.post("/v1/images/generations", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
            assert message in r.json()["error"]["message"], r.text
        bad_json = c.post("/v1/images/generations", content=b"{nope", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
        listed = c.post("/v1/images/generations", json=["prompt"])
        assert listed.status_code == 400 and "must be a JSON object" in listed.json()["error"]["message"]
        text = c.post("/v1/images/generations", content=b"prompt=x", headers={"content-type": "text/plain"})
        assert text.status_code == 415 and "multipart/form-data or application/json" in text.text


def test_oversized_body_is_413(open_server):
    # Raw sockets: the server answers as soon as it knows, and a client still writing (httpx) may see the
    # connection close before it reads the answer; curl waits for it (Expect: 100-continue).
    head = {"Content-Type": "application/json", "Connection": "close"}
    declared = raw_send(open_server, "/v1/images/edits", {**head, "Content-Length": str(MAX_BODY + 1)})
    status, text = read_response(declared)  # refused from the header alone: not a byte of the body was sent
    assert status == 413 and '"code":"body_too_large"' in text.replace(" ", "") and str(MAX_BODY) in text
    # No length: one byte over the limit in chunks, unterminated, so the server has read all that was sent (a
    # socket closed with unread bytes sends a reset, which can overtake the answer).
    chunks = [b"x" * (MAX_BODY // 2), b"x" * (MAX_BODY - MAX_BODY // 2), b"x"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    streamed = raw_send(open_server, "/v1/images/generations", {**head, "Transfer-Encoding": "chunked"}, body)
    status, text = read_response(streamed)  # counted as it streams in
    assert status == 413 and "is above the limit of" in text
    with open_server.client() as c:
        assert c.get("/health").status_code == 200
        small = c.post("/v1/images/edits", files=[("image[]", ("a.png", b"\0" * 1000, "image/png"))],
                       data={"prompt": "x"})  # fmt: skip
        assert small.status_code == 400  # under the limit: read, then refused as not an image


def test_auth_on_and_off(keyed_server, open_server, case_images):
    url = keyed_server.url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}, {"Authorization": "Basic x"}):
        r = httpx.get(f"{url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.post(f"{url}/v1/images/edits", data={"prompt": "x"}).status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200  # liveness needs no key
    ok = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(f"{url}/v1/models", headers=ok).status_code == 200
    body = {"prompt": "x", "steps": 2, "planner": "none", "images": [data_url(case_images[0])]}
    assert httpx.post(f"{url}/v1/images/edits", json=body, headers=ok, timeout=30).status_code == 200
    assert httpx.get(f"{open_server.url}/v1/models").status_code == 200  # no key set: no auth
