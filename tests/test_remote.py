"""The search service shared by dashboard sessions: same answers as in-process, several clients at
once, one-line errors, and a client that never loads torch."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from semcopy_lib.app import SearchService, build_index
from semcopy_lib.app.remote import RemoteSearchService, SearchServer, ServiceError
from semcopy_lib.app.results import result_from_dict, result_to_dict


@pytest.fixture(scope="module")
def served(gallery_dir, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("remote") / "idx"
    build_index(gallery_dir, index_dir, progress=False)
    service = SearchService(index_dir)
    server = SearchServer(service).start()
    yield service, RemoteSearchService(server.socket_path)
    server.close()


def png_bytes(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def test_the_socket_is_private_to_this_user(served):
    _, remote = served
    assert stat.S_IMODE(os.stat(Path(remote.socket_path).parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(remote.socket_path).st_mode) == 0o600


def test_remote_answers_exactly_like_the_service_in_process(served, gallery_dir):
    service, remote = served
    files = sorted(gallery_dir.rglob("*.png"))[:3]
    contents = [png_bytes(f) for f in files] + [b"not an image"]
    names = ["a.png", "b.png", "c.png", "bad.jpg"]
    local = service.search(contents, k=4, names=names)
    over = remote.search(contents, k=4, names=names)
    assert [result_to_dict(r) for r in over] == [result_to_dict(r) for r in local]
    assert over[0].hits[0].gallery_id == files[0].relative_to(gallery_dir).as_posix()
    assert over[3].error == "bad.jpg: a text file, not an image" and not over[3].hits
    facts = remote.describe()
    assert facts["encoder"] == remote.encoder.name == service.encoder.name
    assert facts["count"] == len(service.index) == 12
    m = remote.gallery_map()
    assert sorted(m.ids) == sorted({r.gallery_id for r in service.index.records()}) and m.xy.shape == (12, 2)


def test_result_round_trip_keeps_every_field(served, gallery_dir):
    service, _ = served
    [result] = service.search([sorted(gallery_dir.rglob("*.png"))[5]], k=3)
    assert result_from_dict(result_to_dict(result)) == result


def test_several_clients_at_once_each_get_their_own_right_answer(served, gallery_dir):
    _, remote = served
    files = sorted(gallery_dir.rglob("*.png"))[:8]

    def one(path: Path) -> str:
        client = RemoteSearchService(remote.socket_path)  # one per session, as each kernel has
        [result] = client.search([png_bytes(path)], k=1, names=[path.name])
        return result.hits[0].gallery_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(one, files))
    assert found == [f.relative_to(gallery_dir).as_posix() for f in files]


def test_add_upload_stores_a_png_under_its_hash_and_the_next_search_finds_it(served, tmp_path):
    service, remote = served
    from tests.conftest import pattern_image

    buf = io.BytesIO()
    pattern_image(77, (90, 90)).save(buf, "JPEG", quality=95)
    gallery_id = remote.add_upload(buf.getvalue(), "../../etc/passwd my pic.jpg", "uploads test")
    assert gallery_id == "uploads test/passwd_my_pic.png"
    stored = [r for r in service.index.records() if r.gallery_id == gallery_id]
    assert stored and Path(stored[0].source).parent == service.index.directory / "uploads"
    assert [r.hits[0].gallery_id for r in remote.search([buf.getvalue()], k=1)] == [gallery_id]
    with pytest.raises(ServiceError, match="^x.jpg: empty file$"):
        remote.add_upload(b"", "x.jpg", "uploads test")
    with pytest.raises(ServiceError, match="class name"):
        remote.add_upload(buf.getvalue(), "y.jpg", "../up")


def test_a_dashboard_kernel_on_the_shared_service_does_not_load_torch():
    code = ("import sys; import semcopy_lib.dashboard.search_app, semcopy_lib.app.remote; "
            "print(sorted(m for m in ('torch', 'torchvision', 'transformers', 'ultralytics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_gone_server_is_one_line(tmp_path):
    with pytest.raises(ServiceError, match="not answering"):
        RemoteSearchService(tmp_path / "nothing.sock")


def test_requests_are_capped_and_logged_with_their_tracebacks(served, gallery_dir, monkeypatch):
    from semcopy_lib.app.remote import LOG_NAME, MAX_FILES, MAX_K

    service, remote = served
    query = png_bytes(gallery_dir / "food" / "img04.png")
    with pytest.raises(ServiceError, match=f"k must be 1 to {MAX_K}"):
        remote.search([query], k=MAX_K + 1)
    with pytest.raises(ServiceError, match=f"at most {MAX_FILES} queries"):
        remote.search([query] * (MAX_FILES + 1), k=5)
    assert remote.search([query], k=MAX_K)[0].hits[0].gallery_id == "food/img04.png"

    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(service, "search", broken)
    with pytest.raises(ServiceError, match="RuntimeError: the model fell over"):
        remote.search([query], k=5)
    logged = (service.index.directory / LOG_NAME).read_text()
    assert "POST /search: 400 k must be 1 to 100" in logged and "POST /search: 200 in" in logged
    assert "POST /search: 500" in logged and 'raise RuntimeError("the model fell over")' in logged  # its traceback


def test_duplicates_come_over_the_socket_as_in_process(served):
    service, remote = served
    here, there = service.duplicates(0.5), remote.duplicates(0.5)
    assert there == here and there["threshold"] == 0.5
    assert remote.duplicates()["threshold"] == service.encoder.copy_score  # the measured one by default


def test_a_full_connection_queue_makes_a_client_wait_not_fail(tmp_path):
    """A Unix socket whose accept queue is full refuses a connect at once (EAGAIN); the client waits."""
    import socket
    import threading
    import time

    from semcopy_lib.app.remote import _UnixConnection

    path = str(tmp_path / "busy.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    waiting = []
    for _ in range(1000):  # fill the queue: later connects are refused until the server accepts
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(path)
            waiting.append(s)
        except BlockingIOError:
            s.close()
            break
    else:
        raise AssertionError("the kernel never refused a connect: the queue could not be filled")
    accepted = []

    def drain() -> None:
        time.sleep(0.3)
        server.settimeout(5)
        for _ in range(len(waiting) + 1):
            accepted.append(server.accept()[0])

    thread = threading.Thread(target=drain)
    thread.start()
    conn = _UnixConnection(path, timeout=5)
    conn.connect()  # refused at first, then accepted
    thread.join()
    assert len(accepted) == len(waiting) + 1
    for s in waiting + accepted + [conn.sock, server]:
        s.close()
