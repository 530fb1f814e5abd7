"""The built-in demo gallery and its queries (what `make demo` serves)."""

from semcopy_lib.data import load_image
from semcopy_lib.data.samples import build_sample_gallery, sample_photo_files
from semcopy_lib.segment import analyse


def test_demo_gallery_has_queries_of_every_layout(tmp_path):
    gallery = build_sample_gallery(tmp_path)
    subjects = sample_photo_files()
    assert {p.parent.name for p in gallery.rglob("photo.png")} == set(subjects)
    queries = tmp_path / "queries"
    [page] = queries.glob("webpage-*.png")
    assert page.stem.removeprefix("webpage-") in subjects  # the page shows a gallery photo
    assert analyse(load_image(page)).layout == "screenshot"
    collage = analyse(load_image(queries / "collage-4.png"))
    assert collage.layout == "collage" and len(collage.boxes) == 4
    assert len(list(queries.glob("*-crop.jpg"))) == len(subjects)
