"""`semcopy api`: the HTTP API answers as the CLI does, guards writes, caps uploads; concurrent clients."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from semcopy_lib.api import create_app
from semcopy_lib.app import SearchService
from semcopy_lib.app.remote import MAX_UPLOAD_BYTES
from semcopy_lib.cli import main
from semcopy_lib.data import compose, load_image

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(gallery_index, tmp_path_factory):
    index = tmp_path_factory.mktemp("api") / "idx"
    shutil.copytree(gallery_index, index)
    service = SearchService(index)
    return service, TestClient(create_app(service, TOKEN))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_search_answers_as_search_json_does(served, gallery_dir, tmp_path, capsys):
    service, client = served
    import random

    page, _ = compose.page(load_image(gallery_dir / "food" / "img04.png"), random.Random(3))
    page.save(tmp_path / "page.png")
    answer = client.post("/search", files={"file": ("page.png", (tmp_path / "page.png").read_bytes())}, data={"k": "5"})
    assert answer.status_code == 200
    assert main(["search", "--index", str(service.index.directory), "--json", "-k", "5", str(tmp_path / "page.png")]) == 0
    cli = json.loads(capsys.readouterr().out)
    got = answer.json()
    assert got["query"] == "page.png" and got["hits"][0]["id"] == "food/img04.png"
    assert [h["id"] for h in got["hits"]] == [h["id"] for h in cli["hits"]] and got["regions"] == cli["regions"]


def test_reads_and_writes(served, gallery_dir):
    service, client = served
    info = client.get("/index/info").json()
    assert info["count"] == len(service.index)
    assert client.get("/thumbs/food/img04.png").headers["content-type"] == "image/png"
    image = client.get("/images/food/img04.png")
    assert image.status_code == 200 and image.content == (gallery_dir / "food" / "img04.png").read_bytes()
    assert client.get("/images/food/nothing.png").json() == {"error": "food/nothing.png: no image file to send"}
    new = _png(Image.effect_mandelbrot((90, 70), (-2, -1.2, 1, 1.2), 25).convert("RGB"))
    refused = client.post("/index/add", files={"file": ("m.png", new)}, data={"label": "api"})
    assert refused.status_code == 401 and refused.json()["error"].startswith("give the API token")
    assert client.post("/index/add", files={"file": ("m.png", new)}, data={"label": "api"},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    added = client.post("/index/add", files={"file": ("m.png", new)}, data={"label": "api"}, headers=AUTH)
    assert added.json() == {"id": "api/m.png"} and client.get("/index/info").json()["count"] == info["count"] + 1
    assert client.delete("/index/api/m.png").status_code == 401
    assert client.delete("/index/api/m.png", headers=AUTH).json() == {"removed": "api/m.png"}
    assert client.delete("/index/api/m.png", headers=AUTH).status_code == 404
    assert client.get("/index/info").json()["count"] == info["count"]
    assert client.get("/dedup").json() == {"threshold": service.encoder.copy_score, "groups": []}


def test_a_thumbnail_that_does_not_decode_is_not_sent(gallery_index, tmp_path):
    """An index folder is untrusted: its stored thumbnail bytes are sent only when they decode as one
    (else 404, one line), and never for the browser to sniff as something else."""
    shutil.copytree(gallery_index, tmp_path / "idx")
    service = SearchService(tmp_path / "idx")
    service.index.store.conn.execute("UPDATE thumbs SET png = ? WHERE gallery_id = 'food/img04.png'",
                                     (b"<html><script>alert(1)</script></html>",))
    service.index.store.conn.commit()
    client = TestClient(create_app(service, TOKEN))
    bad = client.get("/thumbs/food/img04.png")
    assert bad.status_code == 404 and bad.json() == {"error": "food/img04.png: no thumbnail"}
    good = client.get("/thumbs/food/img01.png")
    assert good.status_code == 200 and good.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(good.content)).size[0] <= 96


def test_bad_uploads_are_one_line_errors(served):
    _, client = served
    big = b"\\x89PNG" + b"\\0" * MAX_UPLOAD_BYTES
    over = client.post("/search", files={"file": ("big.png", big)})
    assert over.status_code == 413 and over.json() == {"error": f"big.png: over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit"}
    text = client.post("/search", files={"file": ("notes.png", b"just some text")})
    assert text.status_code == 422 and text.json()["error"].startswith("notes.png: ")
    assert client.post("/search", files={"file": ("x.png", b"x")}, data={"k": "1000"}).status_code == 422


def test_missing_or_mistyped_fields_and_unknown_routes_answer_in_the_same_one_line_shape(served):
    _, client = served
    missing = client.post("/search", data={"k": "3"})
    assert missing.status_code == 422 and missing.json() == {"error": "file: Field required"}
    mistyped = client.post("/search", files={"file": ("x.png", b"x")}, data={"k": "abc"})
    assert mistyped.status_code == 422 and list(mistyped.json()) == ["error"] and mistyped.json()["error"].startswith("k: ")
    assert client.get("/dedup", params={"threshold": "abc"}).json()["error"].startswith("threshold: ")
    for bad in ("nan", "inf", "1.5"):
        refused = client.get("/dedup", params={"threshold": bad})
        assert refused.status_code == 422 and refused.json() == {"error": "threshold must be a cosine, -1 to 1"}
    nowhere = client.get("/no/such/route")
    assert nowhere.status_code == 404 and nowhere.json() == {"error": "Not Found"}


def test_beyond_loopback_reads_need_the_token_too(served):
    service, _ = served
    client = TestClient(create_app(service, TOKEN, protect_reads=True))
    assert client.get("/index/info").status_code == 401
    assert client.get("/index/info", headers=AUTH).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_with_eight_concurrent_clients(gallery_index, gallery_dir, tmp_path):
    """uvicorn on a free port: 8 clients x 25 requests (searches, and adds of their own images) at once:
    no error, every added image in the index once."""
    index = tmp_path / "idx"
    shutil.copytree(gallery_index, index)
    port = _free_port()
    log = open(tmp_path / "api.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "api", "--index", str(index), "--port", str(port),
                             "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"{base}/index/info", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                time.sleep(0.5)
        queries = [(gallery_dir / "food" / "img04.png").read_bytes(), (gallery_dir / "animals" / "img00.png").read_bytes()]

        def client(n: int) -> list[str]:
            errors = []
            with httpx.Client(base_url=base, timeout=300) as http:
                for i in range(25):
                    if i % 5 == 4:  # every fifth request adds an image of this client's own
                        own = _png(Image.effect_mandelbrot((60 + n, 50 + i), (-2, -1.2, 1, 1.2), 20 + i).convert("RGB"))
                        r = http.post("/index/add", files={"file": (f"c{n}-{i}.png", own)}, data={"label": "load"},
                                      headers=AUTH)
                    else:
                        r = http.post("/search", files={"file": ("q.png", queries[i % 2])}, data={"k": "3"})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
            return errors

        with ThreadPoolExecutor(8) as pool:
            errors = [e for found in pool.map(client, range(8)) for e in found]
        assert errors == []
        info = httpx.get(f"{base}/index/info").json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from semcopy_lib.index import GalleryIndex

    ids = [r.gallery_id for r in GalleryIndex.open(index, read_only=True).records()]
    added = {i for i in ids if i.startswith("load/")}
    assert added == {f"load/c{n}-{i}.png" for n in range(8) for i in range(4, 25, 5)}  # 40, none lost
    assert info["count"] == 12 + 40 == len(set(ids))
