"""The dashboard's actions without a browser (the browser runs in tests/e2e)."""

from __future__ import annotations

import datetime as dt
import html
import io
import shutil

import pytest
from PIL import Image

from semcopy_lib.app import SearchService
from semcopy_lib.dashboard.search_app import SearchApp


def _file(name: str, content: bytes) -> dict:
    """An entry of FileUpload.value as the browser sends it."""
    return {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
            "last_modified": dt.datetime.fromtimestamp(0, tz=dt.timezone.utc)}


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def app(gallery_index, tmp_path):
    index = tmp_path / "idx"
    shutil.copytree(gallery_index, index)
    return SearchApp(SearchService(index))


def test_a_partly_failed_add_names_each_file_and_keeps_what_went_in(app):
    before = len(app.service.index)
    app.upload.value = (_file("red.png", _png((200, 30, 30))), _file("notes.png", b"not an image"),
                        _file("blue.png", _png((30, 30, 200))))
    app.new_class.value = "added"
    app.add()
    said = app.status.value
    assert "semcopy-error" in said and "notes.png" in said and "(not added)" in said
    assert "Added added/red.png, added/blue.png." in said and f"now holds {before + 2} images" in said
    assert len(app.service.index) == before + 2


def test_the_files_that_reached_the_kernel_are_named_with_their_size(app):
    app.upload.value = (_file("red.png", b"x" * 2**20), {**_file("huge.png", b""), "size": 3 * 2**20})
    assert app.chosen.value == ('<p class="semcopy-chosen" data-names="red.png, huge.png" style="margin-right: 1em">'
                                "chosen: red.png, huge.png (4.0 MB)</p>")
    app.upload.value = ()  # cleared: the last choice stays named
    assert "red.png, huge.png" in app.chosen.value


def test_more_files_than_one_request_takes_are_refused_in_one_line(app):
    from semcopy_lib.app.remote import MAX_FILES

    app.upload.value = tuple(_file(f"{i}.png", _png((i, i, i))) for i in range(MAX_FILES + 1))
    app.run()
    assert f"Choose at most {MAX_FILES} images at a time ({MAX_FILES + 1} chosen)." in app.status.value
    assert app.finished.value.endswith('data-run="1"></span>')  # a refused action still finishes


def test_a_file_sent_empty_for_being_over_the_cap_is_refused_by_its_size(app):
    from semcopy_lib.app.remote import MAX_UPLOAD_BYTES

    app.upload.value = ({**_file("huge.png", b""), "size": MAX_UPLOAD_BYTES + 2**20},)
    app.run()
    said = html.unescape(app.status.value)
    assert f"huge.png: too big ({MAX_UPLOAD_BYTES / 2**20 + 1:.1f} MB > {MAX_UPLOAD_BYTES / 2**20:.0f} MB)" in said


def test_the_duplicates_view_shows_each_group_with_its_keeper_and_offers_the_report(app, gallery_dir):
    import base64

    app.find_duplicates()
    assert "0 group(s)" in app.dup_status.value and "No copies" in app.dup_groups.value
    app.service.add_upload((gallery_dir / "food" / "img04.png").read_bytes(), "again.png", "copies")
    app.find_duplicates()
    assert "1 group(s), 1 image(s) besides their keepers" in app.dup_status.value
    shown = app.dup_groups.value
    assert shown.count("<figure") == 2 and shown.index("food/img04.png") < shown.index("copies/again.png")
    assert 'class="keeper"' in shown and shown.count("data:image/png;base64,") == 2
    page = base64.b64decode(app.dup_status.value.split("data:text/html;base64,")[1].split('"')[0]).decode()
    assert page.startswith("<!doctype html>") and "copies/again.png" in page


def test_the_map_sends_the_gallery_once_and_a_search_only_its_marks(app, gallery_dir):
    import json

    sent = []
    app.map.observe(lambda change: sent.append(change["name"]), names=["figure", "overlay"])
    target = next(p for p in sorted(gallery_dir.rglob("*.png")) if p.parent.name == "food")
    app.upload.value = (_file("query.png", target.read_bytes()),)
    app.run()
    app.run()
    assert "figure" not in sent  # the gallery's points went with the page, not with a search
    marks = {t["name"]: t for t in json.loads(app.map.overlay)}
    assert set(marks) == {"hits", "first hit", "query"}
    assert marks["first hit"]["text"] == [f"first hit: food/{target.name}"]
    assert marks["query"]["text"] == ["query: query.png"]
    assert len(app.map.overlay) < 4096 < len(app.map.figure)  # a search sends kilobytes, the map once
    app.new_class.value = "added"
    app.add()
    assert sent[-2:] == ["figure", "overlay"]  # the gallery grew: drawn anew, the last search marked on it
    assert sum(len(t["text"]) for t in json.loads(app.map.figure)["data"]) == len(app.service.index)  # a point each


def test_a_hit_whose_file_gives_no_thumbnail_shows_a_placeholder_not_a_broken_image(tmp_path):
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.dashboard.search_app import hit_card

    Image.new("RGB", (40, 30), (200, 0, 0)).save(tmp_path / "red.png")
    shown = hit_card(1, SearchHit("a/red.png", 0.9, "a", str(tmp_path / "red.png"), (0, 0, 4, 3), "whole"), "copy", "whole", "")
    gone = hit_card(1, SearchHit("a/gone.png", 0.9, "a", str(tmp_path / "gone.png"), (0, 0, 4, 3), "whole"), "copy", "whole", "")
    assert '<img class="sc-thumb" src="data:image/jpeg;base64,' in shown and "no preview" not in shown
    assert 'class="sc-thumb sc-none">no preview</div>' in gone and 'src=""' not in gone.split("sc-why")[0]
