"""When two gallery images are one picture to the benchmarks (semcopy_lib.eval.pictures)."""

from types import SimpleNamespace

from PIL import Image, ImageOps

from semcopy_lib.eval.pictures import SamePictures


def _gallery(tmp_path):
    """left: black left half; right: its mirror; top: black top half (another picture); a broken file."""
    left = Image.new("RGB", (64, 64), "white")
    left.paste((0, 0, 0), (0, 0, 32, 64))
    left.save(tmp_path / "left.png")
    ImageOps.mirror(left).save(tmp_path / "right.png")
    top = Image.new("RGB", (64, 64), "white")
    top.paste((0, 0, 0), (0, 0, 64, 32))
    top.save(tmp_path / "top.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    return tmp_path


def test_a_mirror_is_the_same_picture_another_drawing_and_an_unreadable_file_are_not(tmp_path):
    same = SamePictures(_gallery(tmp_path))
    assert same("left.png", "right.png") and same("right.png", "left.png")
    assert not same("left.png", "top.png")
    assert not same("left.png", "broken.png") and same("broken.png", "broken.png")
    assert not same("left.png", "gone.png")  # no file: only itself


def test_byte_identical_files_are_one_picture_without_reading_them(tmp_path):
    # the index's digests say two names are one file: neither needs to be readable
    same = SamePictures(tmp_path, {"a/cat.png": "d1", "b/cat.png": "d1", "c/dog.png": "d2", "d/x.png": None})
    assert same("a/cat.png", "b/cat.png")
    assert not same("a/cat.png", "c/dog.png")
    assert not same("d/x.png", "e/y.png")  # no digest on either side is no evidence


def _hits(*ids):
    return [SimpleNamespace(gallery_id=g, score=1.0 - 0.1 * i) for i, g in enumerate(ids)]


def test_a_twin_counts_only_in_the_picture_figures_of_a_composite(tmp_path):
    from semcopy_lib.eval.regions import RegionQuery, _found

    same = SamePictures(_gallery(tmp_path))
    query = RegionQuery(tmp_path / "q.png", "composite", "left.png", (0, 0, 10, 10), also="top.png")
    assert _found(_hits("top.png", "right.png"), query) == (True, False)  # the drawing's mirror, not the drawing
    assert _found(_hits("top.png", "right.png"), query, same) == (True, True)
    assert _found(_hits("right.png", "broken.png"), query, same) == (True, False)  # the photo missing
    single = RegionQuery(tmp_path / "q.png", "background", "left.png", (0, 0, 10, 10))
    assert _found(_hits("right.png"), single) == (False, False)
    assert _found(_hits("right.png"), single, same) == (True, True)
    assert _found([], single, same) == (False, False)


def test_evaluated_queries_report_r1_by_picture_beside_the_strict_r1(tmp_path):
    from semcopy_lib.eval.queries import EvalQuery, evaluate_queries

    same = SamePictures(_gallery(tmp_path))
    answers = {"q1.png": _hits("right.png", "left.png"), "q2.png": _hits("top.png"), "q3.png": _hits("broken.png")}
    service = SimpleNamespace(search=lambda paths, k, regions: [SimpleNamespace(hits=answers[p], error=None)
                                                                for p in paths])
    queries = [EvalQuery(q, frozenset([g]), "line art") for q, g in
               (("q1.png", "left.png"), ("q2.png", "top.png"), ("q3.png", "left.png"))]
    row = evaluate_queries(service, queries, same=same)["kinds"]["line art"]
    assert (row["r1"], row["r1_picture"]) == (0.333, 0.667)  # q1's first hit is left's mirror: right by picture
    assert "r1_picture" not in evaluate_queries(service, queries)["kinds"]["line art"]


def test_a_benchmark_paste_is_boxed_where_the_drawing_shows_not_its_canvas():
    import random

    from semcopy_lib.data import compose

    # a 100-px transparent canvas with a 40 x 20 drawing at (20, 30); pasted at scale 1 on 200 x 200
    subject = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    subject.paste((200, 0, 0, 255), (20, 30, 60, 50))
    background = Image.new("RGB", (200, 200), (0, 90, 0))
    canvas_query, (x, y, w, h) = compose.on_background(subject, background, random.Random(3), scale=(0.5, 0.5))
    shown_query, shown = compose.on_background(subject, background, random.Random(3), scale=(0.5, 0.5), visible=True)
    assert (w, h) == (100, 100) and shown == (x + 20, y + 30, 40, 20)
    assert canvas_query.tobytes() == shown_query.tobytes()  # the same pixels: only the box differs
