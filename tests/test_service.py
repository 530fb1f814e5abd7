"""SearchService: batching, ordering, boxes in the file's pixels, growing the gallery."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from semcopy_lib.app import SearchService, build_index


@pytest.fixture(scope="module")
def service(gallery_dir, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("svc") / "idx"
    build_index(gallery_dir, index_dir, progress=False)
    return SearchService(index_dir)


def test_results_keep_input_order_across_chunks(service, gallery_dir, monkeypatch):
    monkeypatch.setattr(service, "config", replace(service.config, chunk=2))
    files = sorted(gallery_dir.rglob("*.png"))[:4]
    queries = [files[0], b"garbage", files[1], files[2], files[3]]
    results = service.search(queries, k=2, names=["a", "b", "c", "d", "e"])
    assert [r.query for r in results] == ["a", "b", "c", "d", "e"]
    assert results[1].error.startswith("b: ") and not results[1].hits
    for result, f in zip([results[0], *results[2:]], files):
        assert result.hits[0].gallery_id == f.relative_to(gallery_dir).as_posix()
        assert result.hits[0].score == pytest.approx(1.0, abs=1e-4)  # an exact copy scores 1


def test_a_long_search_shows_its_queries_on_stderr(service, gallery_dir, monkeypatch, capsys):
    """A bar counts the queries as each chunk is searched (benchmarks and long query lists run minutes);
    none by default, and the results are the same either way."""
    monkeypatch.setattr(service, "config", replace(service.config, chunk=2))
    files = sorted(gallery_dir.rglob("*.png"))[:3]
    quiet = service.search(files, k=1, regions=False)
    assert capsys.readouterr().err == ""
    shown = service.search(files, k=1, regions=False, progress=True)
    err = capsys.readouterr().err
    assert "searching" in err and "0/3 " in err and "3/3 " in err and "query" in err
    assert [r.hits[0].gallery_id for r in shown] == [r.hits[0].gallery_id for r in quiet]
    monkeypatch.setattr(service, "progress", True)  # what benchmarks set
    service.search(files[:1], k=1, regions=False)
    assert "1/1 " in capsys.readouterr().err


def test_boxes_are_in_the_pixels_of_the_file(service, gallery_dir, tmp_path, monkeypatch):
    # the query is analysed shrunk; no shrunk views (at 64 px every region of it is small: a window of
    # it finds its picture's shrunk view above the whole image)
    config = service.config
    monkeypatch.setattr(service, "config", replace(config, max_side=64, pictures=replace(config.pictures, small=0)))
    big = tmp_path / "big.png"
    Image.open(next(gallery_dir.rglob("img00.png"))).resize((300, 200)).save(big)
    [result] = service.search([big], k=1)
    assert result.regions[0].box == (0, 0, 300, 200)
    assert result.hits[0].query_box == (0, 0, 300, 200)


def test_add_file_grows_the_gallery_with_the_running_encoder(service, tmp_path):
    before = len(service.index)
    path = tmp_path / "upload.png"
    Image.effect_mandelbrot((120, 90), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(path)
    report = service.add_file(path, "fractals/upload.png")
    assert report.added == ["fractals/upload.png"] and len(service.index) == before + 1
    [result] = service.search([path], k=1)
    assert result.hits[0].gallery_id == "fractals/upload.png" and result.hits[0].label == "fractals"
    assert service.add(["/no/such/file.png"]).skipped == [("/no/such/file.png", "no such file")]


def test_a_whole_image_at_copy_level_is_a_copy_only_when_found_in_that_picture(service, gallery_dir, monkeypatch):
    """With every cosine at copy level (``copy_score`` 0), as a collage may be with some flat picture of a
    large gallery: a gallery picture is found inside its first hit's picture, so it stays a copy, searched
    whole; a collage holding it is found in none of its first hits' pictures, so its tiles are searched and
    the tile's picture comes first, found in the tile's pixels."""
    import random

    from semcopy_lib.data import compose, load_image
    from semcopy_lib.segment.layout import inside_share

    rng = random.Random(0)
    target = next(gallery_dir.rglob("img04.png"))
    others = [compose.random_picture(rng, (256, 256)) for _ in range(3)]
    collage, box = compose.collage(load_image(target), others, rng, 2, 2, gutter=12, colour=(255, 255, 255))
    monkeypatch.setattr(service.encoder, "copy_score", 0.0)
    [copy] = service.search([target], k=3)
    assert [r.kind for r in copy.regions] == ["whole"] and copy.hits[0].gallery_id == "food/img04.png"
    [found] = service.search([collage], k=3)
    assert found.layout == "collage" and found.hits[0].gallery_id == "food/img04.png"
    assert found.hits[0].region_kind == "match" and inside_share(found.hits[0].query_box, box) > 0.99
    trusting = replace(service.config, verify=replace(service.config.verify, confirm_copies=False))
    monkeypatch.setattr(service, "config", trusting)
    [taken] = service.search([collage], k=3)
    assert "tile" not in [r.kind for r in taken.regions]  # the whole image's word alone: never cut into tiles


def test_a_page_or_collage_hit_is_checked_in_its_pixels(service, gallery_dir, monkeypatch):
    """A collage's first hits are pixel-checked around the tile that found them, as a single picture's
    are: the tile's picture is found there (kind ``match``, its box where the picture lies) and gains
    score; with ``VerifyConfig.pages`` off it keeps its tile's score and box."""
    import random

    from semcopy_lib.data import compose, load_image
    from semcopy_lib.segment.layout import inside_share

    rng = random.Random(1)
    target = next(gallery_dir.rglob("img04.png"))
    gid = target.relative_to(gallery_dir).as_posix()
    others = [compose.random_picture(rng, (256, 256)) for _ in range(3)]
    collage, box = compose.collage(load_image(target), others, rng, 2, 2, gutter=12, colour=(255, 255, 255))
    [checked] = service.search([collage], k=3)
    assert checked.layout == "collage" and checked.hits[0].gallery_id == gid
    assert checked.hits[0].region_kind == "match" and inside_share(checked.hits[0].query_box, box) > 0.99
    unchecked = replace(service.config, verify=replace(service.config.verify, pages=False))
    monkeypatch.setattr(service, "config", unchecked)
    [plain] = service.search([collage], k=3)
    assert plain.hits[0].gallery_id == gid and plain.hits[0].region_kind == "tile"
    assert plain.hits[0].score < checked.hits[0].score


class FakeDetector:
    """Stands in for YOLO: one fixed box, counted calls, the (confidence, max_objects) each asked for."""

    def __init__(self):
        self.calls = 0
        self.asked = []

    def detect(self, image, confidence, max_objects):
        from semcopy_lib.detect import Detection

        self.calls += 1
        self.asked.append((confidence, max_objects))
        return [Detection((10, 10, 40, 30), "Cat", 0.9)]


def test_detector_boxes_become_object_regions_once_per_image(gallery_dir, tmp_path):
    index_dir = tmp_path / "idx"
    build_index(gallery_dir, index_dir, progress=False)
    fake = FakeDetector()
    service = SearchService(index_dir, detector=fake)
    query = next(gallery_dir.rglob("img01.png"))
    # a gallery image is its own copy: its key objects are reported, but no region beyond the whole is searched
    [result] = service.search([query], k=3, regions=True)
    assert fake.calls == 1
    assert [(o.label, o.box) for o in result.objects] == [("Cat", (10, 10, 40, 30))]
    assert [r.kind for r in result.regions] == ["whole"] and result.hits[0].score >= service.encoder.copy_score
    service.encoder.copy_score = None  # always search regions: the detector's box is one
    [result] = service.search([query], k=3, regions=True)
    assert fake.calls == 2
    assert ("object", (10, 10, 40, 30)) in [(r.kind, r.box) for r in result.regions]
    service.search([query], k=3, regions=False)  # regions off: no detector call
    assert fake.calls == 2
    assert fake.asked == [(0.35, 20)] * 2  # ObjectsConfig's defaults
    from semcopy_lib.query import ObjectsConfig, QueryConfig

    strict = SearchService(index_dir, detector=fake, config=QueryConfig(objects=ObjectsConfig(confidence=0.6, most=3)))
    strict.search([query], k=3, regions=True)
    assert fake.asked[-1] == (0.6, 3)


def test_feature_map_windows_find_a_subject_on_a_larger_picture(service, gallery_dir, monkeypatch):
    import random

    from semcopy_lib.data import compose, load_image
    from semcopy_lib.segment import iou

    rng = random.Random(3)
    subject_path = next(gallery_dir.rglob("img05.png"))
    query, box = compose.on_background(load_image(subject_path), compose.random_picture(rng, (640, 480)), rng,
                                       scale=(0.3, 0.3))  # small enough that the whole image misses it
    from tests.test_encoders import windows_and_pasted

    vectors, boxes, _ = windows_and_pasted(service.encoder, query)
    assert vectors.shape == (len(boxes), 1280) and len(boxes) == 29
    assert all(0 <= x and 0 <= y and x + w <= 641 and y + h <= 481 for x, y, w, h in boxes)
    expected = subject_path.relative_to(gallery_dir).as_posix()
    [whole] = service.search([query], k=12, regions=False)
    [verified] = service.search([query], k=1, regions=True)
    monkeypatch.setattr(service, "config", replace(service.config, verify=replace(service.config.verify, top=0)))  # the embeddings alone
    [with_regions] = service.search([query], k=1, regions=True)
    whole_score = next(h.score for h in whole.hits if h.gallery_id == expected)
    # a window, or the crop of the subject the probe found in the same pass, holds it much better
    top = with_regions.hits[0]
    assert top.gallery_id == expected and top.region_kind in ("window", "subject")
    assert top.score > whole_score + 0.1
    assert top.query_box in [r.box for r in with_regions.regions if r.kind == top.region_kind]
    # and its pixels are there: verified, it scores more and says where it sits
    top = verified.hits[0]
    assert top.gallery_id == expected and top.region_kind == "match" and top.score > with_regions.hits[0].score
    assert iou(top.query_box, box) > 0.7 and top.query_box in [r.box for r in verified.regions if r.kind == "match"]


def test_copies_bench_table(service, gallery_dir, tmp_path):
    from semcopy_lib.eval.copies import run_copies_bench
    from semcopy_lib.train.views import VIEW_KINDS

    report = run_copies_bench(service, gallery_dir, tmp_path, n=3, seed=0)
    assert list(report["splits"]) == ["tuning", "held-out"]
    row = report["splits"]["tuning"]
    assert row["images"] == 3 and list(row["kinds"]) == list(VIEW_KINDS[1:])
    # the held-out split copies the other classes (folders alternate: animals, food, shapes/stars)
    truth = (tmp_path / "held-out" / "truth.tsv").read_text().split()
    assert {gid.split("/")[0] for gid in truth[1::2]} == {"food"}
    for values in row["kinds"].values():
        assert values["queries"] == 3 and 0 <= values["r1"] <= values["r10"] <= 1 and 0 <= values["uap"] <= 1
        assert values["map10"] >= values["r1"]  # one relevant image: AP@10 is 1/rank, at least R@1
    assert row["kinds"]["crop_jpeg"]["r1"] == 1.0  # three crops of distinct photos find their source
    assert row["kinds"]["crop_jpeg"]["r1_whole"] == 1.0  # ... with the whole image alone too
    assert all(values["r1_picture"] >= values["r1"] for values in row["kinds"].values())
    assert 0 <= row["class_map10"] <= 1


def test_image_vectors_give_one_vector_per_gallery_image(service):
    records, vectors = service.index.image_vectors()
    n = len(service.index)  # 12, or 13 after the test that grows the gallery
    assert len(records) == len({r.gallery_id for r in records}) == n >= 12
    assert vectors.shape == (n, 1280) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    hits = service.index.search(vectors[:3], k=1, encoder=service.encoder.name)
    assert [h[0].gallery_id for h in hits] == [r.gallery_id for r in records[:3]]


def test_gallery_images_are_preprocessed_in_the_decoding_threads(gallery_dir, tmp_path, monkeypatch):
    """index_files resizes each image for every gallery view beside inference, in the threads that
    decode, and stores the vectors that embed_gallery gives the decoded images."""
    import threading

    from semcopy_lib.app import index_files
    from semcopy_lib.app.indexing import DECODE_MAX_SIDE
    from semcopy_lib.data import load_image, scan_folder
    from semcopy_lib.encoders import DEFAULT_ENCODER, create_encoder
    from semcopy_lib.index import GalleryIndex

    encoder = create_encoder(DEFAULT_ENCODER, device="cpu")
    in_main, prepare = [], encoder.gallery_pixels

    def recorded(image):
        in_main.append(threading.current_thread() is threading.main_thread())
        return prepare(image)

    monkeypatch.setattr(encoder, "gallery_pixels", recorded)
    files = sorted(scan_folder(gallery_dir), key=lambda f: f.gallery_id)[:5]
    index = GalleryIndex.create(tmp_path / "idx", encoder.config.to_dict(), encoder.dim, root=gallery_dir)
    index_files(index, files, encoder, progress=False)
    assert in_main == [False] * 5
    records, stored = index.image_vectors()
    direct = np.stack([v[0] for v in encoder.embed_gallery([load_image(f.path, max_side=DECODE_MAX_SIDE) for f in files])])
    order = [[f.gallery_id for f in files].index(r.gallery_id) for r in records]
    np.testing.assert_allclose(stored, direct[order], atol=1e-5)


def test_a_slow_file_holds_up_neither_decoding_nor_inference_and_the_index_keeps_input_order(
        gallery_dir, tmp_path, monkeypatch):
    """The first file decodes only once a later batch has been embedded (with an in-order pipeline it would
    wait 10 s, then come first); the index still stores the files in input order, each with its own
    vectors."""
    import threading

    from semcopy_lib.app import index_files
    from semcopy_lib.app import indexing
    from semcopy_lib.data import load_image, scan_folder
    from semcopy_lib.encoders import DEFAULT_ENCODER, create_encoder
    from semcopy_lib.index import GalleryIndex

    encoder = create_encoder(DEFAULT_ENCODER, device="cpu")
    files = sorted(scan_folder(gallery_dir), key=lambda f: f.gallery_id)[:6]
    slow, released = files[0], threading.Event()
    original = indexing.load_image

    def load(path, **kwargs):
        if str(path) == str(slow.path):
            released.wait(timeout=10)
        image = original(path, **kwargs)
        image.info["file"] = str(path)
        return image

    embedded, embed, prepare, file_of = [], encoder.embed_gallery, encoder.gallery_pixels, {}

    def prepared(image):  # the decoded image is not kept: its pixels are what is embedded
        pixels = prepare(image)
        file_of[id(pixels[0])] = image.info["file"]
        return pixels

    def record(images, **kwargs):
        embedded.append([file_of[id(p[0])] for p in kwargs["pixels"]])
        released.set()
        return embed(images, **kwargs)

    monkeypatch.setattr(indexing, "load_image", load)
    monkeypatch.setattr(encoder, "gallery_pixels", prepared)
    monkeypatch.setattr(encoder, "embed_gallery", record)
    index = GalleryIndex.create(tmp_path / "idx", encoder.config.to_dict(), encoder.dim, root=gallery_dir)
    report = index_files(index, files, encoder, batch_size=2, progress=False)
    assert str(slow.path) not in embedded[0] and str(files[1].path) not in embedded[0]  # the later batches went first
    assert sorted(sum(embedded, [])) == sorted(str(f.path) for f in files)  # each once
    assert report.added == [f.gallery_id for f in files]
    records, stored = index.image_vectors()
    assert [r.gallery_id for r in records] == [f.gallery_id for f in files]  # rows in input order
    direct = np.stack([v[0] for v in embed([load_image(f.path, keep_alpha=True) for f in files])])
    np.testing.assert_allclose(stored, direct, atol=1e-5)


def test_the_class_vote_by_hand():
    """Scores 0.9 (cat), 0.8 (dog), 0.7 (cat), 0.6 (dog), 0.58 (cat), 0.45 (bird, beyond the voters):
    cat's votes 0.9^4 + 0.7^4 + 0.58^4 = 1.0094, dog's 0.8^4 + 0.6^4 = 0.5392, total 1.5486; each hit
    gains 0.1 x its class's share. The cat at 0.58 (+0.0652) passes the dog at 0.6 (+0.0348)."""
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.query import VoteConfig, voted

    assert VoteConfig() == VoteConfig(top=5, weight=0.1, power=4)  # the figures above
    rows = [("c1", 0.9, "cat"), ("d1", 0.8, "dog"), ("c2", 0.7, "cat"), ("d2", 0.6, "dog"), ("c3", 0.58, "cat"),
            ("b1", 0.45, "bird")]
    hits = [SearchHit(g, s, label, g, (0, 0, 1, 1), "whole") for g, s, label in rows]
    out = voted(hits)
    assert [h.gallery_id for h in out] == ["c1", "d1", "c2", "c3", "d2", "b1"]
    cat, dog = 0.1 * 1.0094 / 1.5486, 0.1 * 0.5392 / 1.5486
    assert [h.score for h in out] == pytest.approx([0.9 + cat, 0.8 + dog, 0.7 + cat, 0.58 + cat, 0.6 + dog, 0.45], abs=1e-4)
    # copies (0.75 and over here) keep their scores, and no hit is lifted to their level
    capped = voted(hits, copy_score=0.75)
    assert [h.score for h in capped[:3]] == [0.9, 0.8, pytest.approx(0.75, abs=1e-9)] and capped[2].score < 0.75
    # hits that the ceiling makes equal keep their order, whatever their ids: "z" (verified higher) stays first
    tied = voted([SearchHit("z", 0.74, "cat", "z", (0, 0, 1, 1), "match"), SearchHit("a", 0.73, "cat", "a", (0, 0, 1, 1), "residual"),
                  SearchHit("m", 0.5, "dog", "m", (0, 0, 1, 1), "residual")], copy_score=0.75)
    assert [h.gallery_id for h in tied] == ["z", "a", "m"] and tied[0].score == tied[1].score < 0.75
    # one class (or an unlabelled gallery): nothing to vote on, order and scores unchanged
    same = [SearchHit(h.gallery_id, h.score, "", h.source, h.query_box, h.region_kind) for h in hits]
    assert voted(same) == same
    assert voted(hits, config=VoteConfig(weight=0.0)) == hits


def test_search_votes_unless_asked_not_to(service, gallery_dir):
    """The vote reorders below the copy level only: the exact copy stays first at its score, and the
    other hits are the same ids, each scored at least as without the vote."""
    query = sorted(gallery_dir.rglob("*.png"))[5]
    plain, voting = (service.search([query], k=8, vote=v)[0].hits for v in (False, True))
    assert plain[0].gallery_id == voting[0].gallery_id == query.relative_to(gallery_dir).as_posix()
    assert voting[0].score == plain[0].score
    before = {h.gallery_id: h.score for h in service.search([query], k=40, vote=False)[0].hits}
    assert all(h.score >= before[h.gallery_id] - 1e-9 for h in voting)
    assert [h.score for h in voting] == sorted((h.score for h in voting), reverse=True)


def test_the_clock_splits_a_search_by_stage(gallery_index, gallery_dir):
    from semcopy_lib.query.clock import STAGES

    service = SearchService(gallery_index)
    [result] = service.search([gallery_dir / "food" / "img01.png"], k=3, regions=False)
    assert result.hits and set(service.clock.seconds) == set(STAGES)
    spent = {stage for stage, s in service.clock.seconds.items() if s > 0}
    assert spent == {"decode", "embed", "search", "rerank"}  # no regions: nothing proposed, nothing to verify
    service.clock.reset()
    assert sum(service.clock.seconds.values()) == 0.0


def test_a_new_service_leaves_what_it_loaded_out_of_the_collectors_full_passes(service):
    import gc

    gc.unfreeze()
    kept = SearchService(service.index.directory, encoder=service.encoder, read_only=True)
    # a frozen object is in none of the generations that a collection scans
    assert gc.get_freeze_count() > 0 and not any(o is kept.clock for o in gc.get_objects())
    gc.unfreeze()  # the other tests' objects go back to the collector


def test_thumbnails_are_decoded_once_and_again_when_rewritten(gallery_dir, tmp_path, monkeypatch):
    """The pixel checks' thumbnails are decoded once per service (a second identical search decodes none
    and answers the same); a thumbnail written anew under the same id is decoded anew."""
    import random

    import semcopy_lib.app.service as service_module
    from semcopy_lib.data import compose, load_image
    from semcopy_lib.segment.template import read_thumbnail, thumbnail

    build_index(gallery_dir, tmp_path / "idx", progress=False)
    svc = SearchService(tmp_path / "idx")
    decoded = []
    read = service_module.read_thumbnails
    monkeypatch.setattr(service_module, "read_thumbnails", lambda found: decoded.append(sorted(found)) or read(found))
    background, pasted = sorted(gallery_dir.rglob("img00.png"))[0], sorted(gallery_dir.rglob("img07.png"))[0]
    query, _ = compose.on_background(load_image(pasted), load_image(background), random.Random(4), scale=(0.4, 0.4))
    [first] = svc.search([query], k=5)
    assert sum(map(len, decoded)) >= 2  # the copied photo and the checked hits
    decoded.clear()
    [again] = svc.search([query], k=5)
    assert sum(map(len, decoded)) == 0
    assert [(h.gallery_id, h.score) for h in again.hits] == [(h.gallery_id, h.score) for h in first.hits]
    gallery_id = first.hits[0].gallery_id
    grey = thumbnail(Image.new("RGB", (64, 48), (90, 90, 90)))
    svc.index.add_thumbs({gallery_id: grey})
    [image] = svc._thumbnails([gallery_id]).values()
    assert decoded[-1] == [gallery_id] and image.size == (64, 48)
    assert np.array_equal(np.asarray(image), np.asarray(read_thumbnail(grey)))


def test_prepare_names_the_input_shapes_searches_meet(service, monkeypatch):
    """The whole image and batches of up to ``cpu_batch`` region crops at the encoder's side, and the
    feature-map pass at the windows' side."""
    asked = []
    monkeypatch.setattr(service.encoder, "prepare", lambda shapes=(): asked.append(list(shapes)))
    monkeypatch.setattr(service.encoder, "cpu_batch", 3)
    service.prepare()
    side = service.encoder.config.image_size
    assert asked == [[(1, side), (2, side), (3, side), (1, service.config.windows.side)]]


def test_only_the_regions_up_to_twice_the_shrunk_views_side_search_them(service, gallery_dir, tmp_path, monkeypatch):
    """With ``pictures.small`` 64 (the default), each region search says which of its regions are small:
    longer side at most 128 px of the query as decoded (a 1,200 x 900 query decoded at 600 x 450: 256 file
    pixels); the whole image never. With 0, nothing is flagged."""
    from semcopy_lib.segment.page_pictures import PagePicturesConfig

    query = tmp_path / "big.png"
    Image.open(gallery_dir / "animals" / "img00.png").convert("RGB").resize((1200, 900)).save(query)
    searched, flagged = [], []
    search, small = service.index.search, service._small

    def spy_search(vectors, k=10, encoder=None, whole=False, small=None):
        searched.append((whole, len(vectors), small))
        return search(vectors, k, encoder, whole, small)

    def spy_small(found, decoded):
        flagged.append(([region.box for _, region in found], small(found, decoded)))
        return flagged[-1][1]

    monkeypatch.setattr(service.index, "search", spy_search)
    monkeypatch.setattr(service, "_small", spy_small)
    monkeypatch.setattr(service, "_copies", lambda *args: False)  # searched by its parts, whatever it matches
    assert service.config.pictures == PagePicturesConfig(small=64)
    monkeypatch.setattr(service, "config", replace(service.config, max_side=600))
    service.search([query], k=2)
    for boxes, flags in flagged:  # the parts proposed, then the residuals of a part that copies a picture
        assert flags == [max(w, h) <= 256 for _, _, w, h in boxes]
    assert any(flagged[0][1]) and not all(flagged[0][1])  # the windows: some small, some larger
    assert searched == [(True, 1, None)] + [(False, len(boxes), flags) for boxes, flags in flagged]
    searched.clear()
    flagged.clear()
    monkeypatch.setattr(service, "config", replace(service.config, pictures=PagePicturesConfig(small=0)))
    service.search([query], k=2)
    assert len(searched) == len(flagged) + 1 and all(small is None for *_, small in searched)
