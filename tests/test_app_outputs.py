"""What the dashboard shows and hands out, widget-free: verdicts, the hits CSV and ZIP, the gallery map."""

import io
import zipfile

import numpy as np
import pytest

from semcopy_lib.app import build_index
from semcopy_lib.app import gallery_map as map_module
from semcopy_lib.app.export import hits_csv, hits_zip
from semcopy_lib.app.gallery_map import CACHE_NAME, gallery_map
from semcopy_lib.app.results import QueryResult, SearchHit, verdict
from semcopy_lib.index import GalleryIndex


def test_verdict_thresholds_are_inclusive():
    assert [verdict(s, copy=0.8, subject=0.5) for s in (0.8, 0.79, 0.5, 0.49)] == [
        "copy", "same subject", "same subject", "weak"]


def results_with(source: str) -> list[QueryResult]:
    hits = [SearchHit("food/a b.png", 0.91234567, "food", source, (0, 0, 10, 10), "whole"),
            SearchHit("../x/y.png", 0.5, "x", "/no/such/file.png", (2, 2, 5, 5), "photo")]
    return [QueryResult("up/load 1.jpg", hits=hits), QueryResult("bad.png", error="bad.png: not an image")]


def test_hits_csv_has_one_row_per_hit_with_verdicts():
    assert hits_csv(results_with("/nowhere.png"), copy=0.9, subject=0.6).splitlines() == [
        "query,rank,id,score,verdict",
        "up/load 1.jpg,1,food/a b.png,0.912346,copy",
        "up/load 1.jpg,2,../x/y.png,0.5,weak",
    ]


def test_hits_zip_holds_the_csv_and_existing_images_under_safe_names(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG fake")
    with zipfile.ZipFile(io.BytesIO(hits_zip(results_with(str(image)), copy=0.9, subject=0.6))) as zf:
        names = zf.namelist()
        assert zf.read("01_load_1.jpg/01_food_a_b.png") == b"\x89PNG fake"
        assert zf.read("hits.csv").decode().count("\n") == 3
    assert names == ["hits.csv", "01_load_1.jpg/01_food_a_b.png"]  # the missing file is in the CSV only
    assert not any(".." in n or n.startswith("/") for n in names)


def test_a_file_thumbnail_is_decoded_shrunk_and_none_is_made_of_a_huge_file(tmp_path):
    import base64

    from PIL import Image

    from semcopy_lib.app.images import file_thumb

    photo = Image.radial_gradient("L").convert("RGB").resize((1600, 1200))
    photo.save(tmp_path / "photo.jpg")
    photo.save(tmp_path / "photo.png")
    uri = file_thumb(str(tmp_path / "photo.jpg"))
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert thumb.size == (160, 120)
    # 1.92 Mpx: the JPEG decodes at 1/4 (400 x 300), the PNG cannot
    assert file_thumb(str(tmp_path / "photo.jpg"), max_decoded=200_000).startswith("data:image/jpeg;base64,")
    assert file_thumb(str(tmp_path / "photo.png"), max_decoded=200_000) == ""


def test_hits_zip_leaves_out_a_file_that_is_not_an_image(tmp_path):
    secret = tmp_path / "id_rsa"  # an index's records could name any path
    secret.write_bytes(b"not for the zip")
    with zipfile.ZipFile(io.BytesIO(hits_zip(results_with(str(secret)), copy=0.9, subject=0.6))) as zf:
        assert zf.namelist() == ["hits.csv"]


@pytest.fixture()
def index(gallery_dir, tmp_path):
    build_index(gallery_dir, tmp_path / "idx", progress=False)
    return GalleryIndex.open(tmp_path / "idx")


def test_gallery_map_is_computed_once_and_cached_beside_the_index(index, monkeypatch):
    first = gallery_map(index)
    assert (index.directory / CACHE_NAME).is_file()
    assert first.xy.shape == (12, 2) and len(set(first.ids)) == 12 and set(first.labels) == {"animals", "food", "shapes/stars"}
    monkeypatch.setattr(map_module, "umap_2d", lambda *a, **k: pytest.fail("recomputed although cached"))
    again = gallery_map(index)
    assert again.ids == first.ids and np.allclose(again.xy, first.xy)


def test_a_new_gallery_image_is_placed_near_its_neighbours_without_recomputing(index, gallery_dir, monkeypatch):
    from semcopy_lib.app import index_files
    from semcopy_lib.data import GalleryFile
    from semcopy_lib.encoders import create_encoder

    before = gallery_map(index)
    monkeypatch.setattr(map_module, "umap_2d", lambda *a, **k: pytest.fail("recomputed for one new image"))
    twin = next(gallery_dir.rglob("img04.png"))
    index_files(index, [GalleryFile(twin, "added/twin.png")], create_encoder(index.encoder_name), progress=False)
    after = gallery_map(index)
    assert len(after.ids) == 13 and after.ids[:12] == before.ids
    # an exact twin of img04 sits where img04 is (its nearest neighbour weighs most)
    original = after.xy[after.ids.index(twin.relative_to(gallery_dir).as_posix())]
    spread = np.ptp(before.xy, axis=0).max()
    assert np.linalg.norm(after.xy[after.ids.index("added/twin.png")] - original) < 0.35 * spread


def test_the_map_writes_file_and_folder_names_as_text_never_as_markup():
    import numpy as np

    from semcopy_lib.app.gallery_map import GalleryMap
    from semcopy_lib.dashboard.map_view import gallery_traces, overlay_traces

    evil = '<img src=x onerror="alert(1)">'
    gmap = GalleryMap(ids=[f"{evil}/a.png", "b/b.png"], labels=[evil, "b"], sources=["", ""],
                      xy=np.array([[0.0, 1.0], [2.0, 3.0]]), vectors=np.eye(2))
    traces = gallery_traces(gmap) + overlay_traces(gmap, hits=[f"{evil}/a.png"], queries=[(evil, 0.0, 0.0)])
    shown = [t.name for t in traces] + [line for t in traces for line in t.text]
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in shown
    assert "hit: &lt;img src=x onerror=&quot;alert(1)&quot;&gt;/a.png" in shown
    assert not any("<img" in s for s in shown)
