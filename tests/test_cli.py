"""The CLI contract of DESIGN.md: commands, JSON shapes, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from semcopy_lib.cli import main
from semcopy_lib.data.synth import crop_fraction, jpeg

from conftest import pattern_image


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built(gallery_dir, tmp_path_factory):
    index = tmp_path_factory.mktemp("cli") / "idx"
    assert main(["index", "build", str(gallery_dir), "--index", str(index), "--batch-size", "5"]) == 0
    return index


def test_index_info_json_shape(built, capsys):
    code, out, _ = run(capsys, "index", "info", "--index", built, "--json")
    info = json.loads(out)
    assert code == 0
    assert {"count": 12, "encoder": "effnet-lite0-semcopy", "dim": 1280}.items() <= info.items()
    assert info["precision"] == "fp32"  # built in ONNX Runtime (the tests' runtime)


def test_index_settings_lists_what_differs_from_the_defaults_and_reset_saves_them(built, tmp_path, capsys):
    """An index keeps the search settings it was built with: `index settings` names those that differ from
    this version's defaults, and `--reset` saves the defaults (nothing else in the index changes)."""
    import shutil

    from semcopy_lib.app.indexing import query_config
    from semcopy_lib.index import GalleryIndex
    from semcopy_lib.query import QueryConfig

    index_dir = tmp_path / "idx"
    shutil.copytree(built, index_dir)
    index = GalleryIndex.open(index_dir)
    old = QueryConfig().to_dict()
    old["merge"]["subject"], old["turns"]["angles"] = [0.536, 0.199], []  # as an index of an earlier version saved them
    index.set_query(old)
    index.close()
    code, out, _ = run(capsys, "index", "settings", "--index", index_dir, "--json")
    default = QueryConfig()
    assert code == 0 and json.loads(out) == {"index": str(index_dir), "reset": False, "set": {}, "differs": {
        "query.merge.subject": {"saved": [0.536, 0.199], "default": list(default.merge.subject)},
        "query.turns.angles": {"saved": [], "default": list(default.turns.angles)}}}
    code, out, _ = run(capsys, "index", "settings", "--index", index_dir, "--reset")
    assert code == 0 and out.splitlines() == [
        f"query.merge.subject: [0.536, 0.199] -> {list(default.merge.subject)}",
        f"query.turns.angles: [] -> {list(default.turns.angles)}",
        f"{index_dir}: 2 search settings set to this version's defaults"]
    index = GalleryIndex.open(index_dir, read_only=True)
    assert query_config(index) == default and len(index) == 12
    code, out, _ = run(capsys, "index", "settings", "--index", index_dir)
    assert out.strip() == f"{index_dir}: its search settings are this version's defaults"


def test_index_settings_set_saves_one_setting_and_refuses_a_wrong_one_in_a_line(built, gallery_dir, tmp_path, capsys):
    """`--set pictures.small=0` saves that setting alone: a file added after gets no shrunk view, those
    indexed before keep theirs; an unknown key, a group or a value of the wrong type is one line, the
    index unchanged."""
    import shutil

    from PIL import Image

    from semcopy_lib.app.indexing import query_config
    from semcopy_lib.index import GalleryIndex
    from semcopy_lib.query import QueryConfig

    index_dir = tmp_path / "idx"
    shutil.copytree(built, index_dir)
    code, out, _ = run(capsys, "index", "settings", "--index", index_dir, "--set", "pictures.small=0",
                       "--set", "query.merge.subject=[0.5, 0.25]", "--json")
    assert code == 0 and json.loads(out) == {"index": str(index_dir), "reset": False, "set": {
        "query.pictures.small": {"saved": 64, "now": 0}, "query.merge.subject": {"saved": list(QueryConfig().merge.subject),
                                                                               "now": [0.5, 0.25]}},
        "differs": {"query.pictures.small": {"saved": 0, "default": 64},
                    "query.merge.subject": {"saved": [0.5, 0.25], "default": list(QueryConfig().merge.subject)}}}
    saved = (index_dir / "manifest.json").read_text()
    for bad, said in [("pictures.smal=1", "no search setting query.pictures.smal"),
                      ("pictures=1", "query.pictures is a group of settings"),
                      ("pictures.small=0.5", "query.pictures.small: expected a whole number, got 0.5")]:
        code, _, err = run(capsys, "index", "settings", "--index", index_dir, "--set", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and said in err and "Traceback" not in err
    assert (index_dir / "manifest.json").read_text() == saved
    index = GalleryIndex.open(index_dir, read_only=True)
    config = query_config(index)
    assert (config.pictures.small, config.merge.subject) == (0, (0.5, 0.25))
    before = {r.gallery_id for r in index.records() if r.small}
    index.close()
    assert len(before) == 12
    new = tmp_path / "new.png"
    Image.open(gallery_dir / "animals" / "img00.png").rotate(90).save(new)
    assert run(capsys, "index", "add", "--index", index_dir, new)[0] == 0
    index = GalleryIndex.open(index_dir, read_only=True)
    assert len(index) == 13 and {r.gallery_id for r in index.records() if r.small} == before


def test_an_fp32_index_is_searched_and_grown_in_fp32_under_the_default_runtime(built, monkeypatch):
    """The default runtime is mixed bf16 on a CPU with native bf16; an index whose vectors were embedded
    in fp32 gets an fp32 encoder, unless a runtime is asked for by name."""
    from semcopy_lib.app import encoder_for_index
    from semcopy_lib.encoders import effnet as E
    from semcopy_lib.encoders.openvino_runtime import openvino_installed
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(built, read_only=True)
    monkeypatch.setattr(E, "openvino_bf16", lambda: True)
    monkeypatch.delenv("SEMCOPY_RUNTIME")
    mixed = "mixed-bf16" if openvino_installed() else "fp32"
    assert index.manifest["precision"] == "fp32" and encoder_for_index(index).precision() == "fp32"
    for saved in ("mixed-bf16", None):  # an index in bf16, one built before its precision was kept
        index.manifest["precision"] = saved
        assert encoder_for_index(index).precision() == mixed
    monkeypatch.setenv("SEMCOPY_RUNTIME", "openvino")
    index.manifest["precision"] = "fp32"
    assert encoder_for_index(index).precision() == mixed
    index.close()


def test_search_json_lines_in_order_with_errors(built, gallery_dir, tmp_path, capsys):
    import random

    original = Image.open(gallery_dir / "food" / "img04.png").convert("RGB")
    query = tmp_path / "crop of img04.jpg"
    jpeg(crop_fraction(original, random.Random(0)), 70).save(query)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    code, out, err = run(capsys, "search", "--index", built, "-k", "3", "--json", query, bad, tmp_path / "missing.png")
    assert code == 0 and "Traceback" not in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["query"] for line in lines] == [str(query), str(bad), str(tmp_path / "missing.png")]
    first = lines[0]
    assert set(first) == {"query", "regions", "hits"}
    w, h = Image.open(query).size
    assert first["regions"][0] == {"box": [0, 0, w, h], "kind": "whole"}
    assert all(r["kind"] in {"whole", "photo", "tile", "object", "window"} for r in first["regions"])
    assert len(first["hits"]) == 3
    assert all(set(hit) == {"id", "score", "box"} for hit in first["hits"])
    assert all(hit["box"] in [r["box"] for r in first["regions"]] for hit in first["hits"])
    assert first["hits"][0]["id"] == "food/img04.png"
    scores = [hit["score"] for hit in first["hits"]]
    assert scores == sorted(scores, reverse=True) and len({hit["id"] for hit in first["hits"]}) == 3
    assert set(lines[1]) == {"query", "error"} and "notes.jpg" in lines[1]["error"] and "\n" not in lines[1]["error"]
    assert "no such file" in lines[2]["error"]


def test_no_regions_searches_the_whole_image_only(built, gallery_dir, tmp_path, capsys):
    import random

    from semcopy_lib.data import compose
    from semcopy_lib.segment import iou

    shot, box = compose.page(Image.open(gallery_dir / "food" / "img04.png").convert("RGB"), random.Random(0))
    query = tmp_path / "page.png"
    shot.save(query)
    w, h = shot.size
    code, out, _ = run(capsys, "search", "--index", built, "-k", "1", "--json", "--no-regions", query)
    line = json.loads(out)
    assert line["regions"] == [{"box": [0, 0, w, h], "kind": "whole"}]
    assert line["hits"][0]["box"] == [0, 0, w, h]
    _, out, _ = run(capsys, "search", "--index", built, "-k", "1", "--json", query)  # regions are the default
    line = json.loads(out)
    assert line["regions"][0] == {"box": [0, 0, w, h], "kind": "whole"}
    assert "photo" in [r["kind"] for r in line["regions"]]
    assert line["hits"][0]["id"] == "food/img04.png" and iou(tuple(line["hits"][0]["box"]), box) >= 0.7


def test_search_exit_status_when_all_fail_or_strict(built, tmp_path, capsys):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\0\0")
    assert run(capsys, "search", "--index", built, "--json", bad)[0] == 1
    good = tmp_path / "g.png"
    pattern_image(3).save(good)
    assert run(capsys, "search", "--index", built, "--json", good, bad)[0] == 0
    assert run(capsys, "search", "--index", built, "--json", "--strict", good, bad)[0] == 1


def test_search_with_other_encoder_is_a_one_line_error(built, tmp_path, capsys):
    q = tmp_path / "q.png"
    pattern_image(1).save(q)
    code, out, err = run(capsys, "search", "--index", built, "--encoder", "clip-vit-b32", q)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "built with encoder 'effnet-lite0-semcopy'" in err


def test_add_then_remove_without_rebuild(built, tmp_path, capsys):
    newdir = tmp_path / "birds"
    newdir.mkdir()
    pattern_image(99).save(newdir / "new.png")
    assert run(capsys, "index", "add", "--index", built, newdir / "new.png")[0] == 0
    code, out, _ = run(capsys, "search", "--index", built, "-k", "1", "--json", newdir / "new.png")
    hit = json.loads(out)["hits"][0]
    assert hit["id"] == "birds/new.png" and hit["score"] > 0.99
    code, _, err = run(capsys, "index", "add", "--index", built, newdir / "new.png")
    assert "0 added" in err and "1 unchanged" in err
    assert run(capsys, "index", "remove", "--index", built, "birds/new.png")[0] == 0
    _, out, _ = run(capsys, "index", "info", "--index", built, "--json")
    assert json.loads(out)["count"] == 12


def test_build_skips_bad_files_and_names_them(tmp_path, capsys):
    gallery = tmp_path / "g"
    (gallery / "a").mkdir(parents=True)
    pattern_image(5).save(gallery / "a" / "ok.png")
    (gallery / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, out, err = run(capsys, "index", "build", gallery, "--index", tmp_path / "idx", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["added"] == ["a/ok.png"]
    assert [s["file"].endswith("broken.jpg") for s in report["skipped"]] == [True]


def test_segment_json_shape(tmp_path, capsys):
    img = tmp_path / "s.png"
    Image.new("RGB", (30, 20)).save(img)
    code, out, _ = run(capsys, "segment", "--json", img)
    assert code == 0
    assert json.loads(out) == {"image": str(img), "layout": "single", "boxes": [[0, 0, 30, 20]]}


def test_segment_json_finds_collage_tiles(gallery_dir, tmp_path, capsys):
    import random

    from semcopy_lib.data import compose, load_image

    photos = [load_image(p) for p in sorted(gallery_dir.rglob("*.png"))[:4]]
    img, _ = compose.collage(photos[0], photos[1:], random.Random(0), 1, 2, gutter=12)
    path = tmp_path / "collage.png"
    img.save(path)
    _, out, _ = run(capsys, "segment", "--json", path, "--draw", tmp_path / "drawn")
    line = json.loads(out)
    assert line["layout"] == "collage" and len(line["boxes"]) == 2
    # --draw: the image at its size, each tile outlined in the dashboard's tile colour
    from semcopy_lib.app.overlay import COLOURS

    drawn = Image.open(tmp_path / "drawn" / "collage.segment.png").convert("RGB")
    assert drawn.size == img.size
    for x, y, w, h in line["boxes"]:
        assert drawn.getpixel((x + 1, y + h // 2)) == COLOURS["tile"]
        assert drawn.getpixel((x + w // 2, y + h // 2)) != COLOURS["tile"]


def test_segment_of_a_large_image_is_analysed_as_search_does_and_reported_in_file_pixels(gallery_dir, tmp_path, capsys):
    """An image over ``QueryConfig.max_side`` is analysed at that size, as a search analyses it; its boxes
    are in the file's pixels, and ``--draw`` draws at the analysed size."""
    import random

    from semcopy_lib.data import compose, load_image
    from semcopy_lib.query import QueryConfig
    from semcopy_lib.segment import iou

    photos = [load_image(p) for p in sorted(gallery_dir.rglob("*.png"))[:4]]
    img, _ = compose.collage(photos[0], photos[1:], random.Random(0), 1, 2, gutter=12)
    small, large = tmp_path / "collage.png", tmp_path / "large.png"
    img.save(small)
    factor = 2 * QueryConfig().max_side // img.width + 1  # the large copy, over twice max_side wide
    img.resize((img.width * factor, img.height * factor), Image.NEAREST).save(large)
    _, out, _ = run(capsys, "segment", "--json", large, "--draw", tmp_path / "drawn")
    boxes = json.loads(out)["boxes"]
    expected = [[v * factor for v in box] for box in json.loads(run(capsys, "segment", "--json", small)[1])["boxes"]]
    assert json.loads(out)["layout"] == "collage" and len(boxes) == len(expected) == 2
    assert all(iou(tuple(b), tuple(e)) > 0.97 for b, e in zip(boxes, expected))
    assert max(Image.open(tmp_path / "drawn" / "large.segment.png").size) <= QueryConfig().max_side


def test_encoders_json_shape(capsys):
    code, out, _ = run(capsys, "encoders", "--json")
    rows = json.loads(out)
    assert code == 0 and all(set(r) == {"name", "available", "note"} for r in rows)
    assert {"name": "effnet-lite0", "available": True}.items() <= next(r for r in rows if r["name"] == "effnet-lite0").items()


def test_missing_index_is_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "index", "info", "--index", tmp_path / "none")
    assert code == 2 and err.startswith("semcopy: error: ") and "not a semcopy index" in err


def test_a_search_of_a_missing_index_says_so_in_one_line_before_looking_for_weights(tmp_path, capsys, monkeypatch):
    """The key-object detector (and its notice when no YOLO weights are here) is for a search that runs,
    not for one whose index is missing."""
    from semcopy_lib.app import service

    looked = []
    monkeypatch.setattr(service, "load_detector", lambda weights=None: looked.append(weights))
    query = tmp_path / "q.png"
    Image.new("RGB", (64, 48), "red").save(query)
    code, out, err = run(capsys, "search", query, "--index", tmp_path / "none")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and looked == []
    assert err.startswith("semcopy: error: ") and "not a semcopy index" in err


def test_python_dash_m_and_console_script_run():
    proc = subprocess.run([sys.executable, "-m", "semcopy_lib", "encoders", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)


def test_clip_index_end_to_end_with_a_local_checkpoint(gallery_dir, tiny_clip_dir, tmp_path, capsys):
    index = tmp_path / "clip.idx"
    code, _, err = run(capsys, "index", "build", gallery_dir, "--index", index,
                       "--encoder", "clip-vit-b32", "--encoder-path", tiny_clip_dir)
    assert code == 0, err
    _, out, _ = run(capsys, "index", "info", "--index", index, "--json")
    assert json.loads(out)["encoder"] == "clip-vit-b32" and json.loads(out)["dim"] == 16
    # the saved config brings the same local checkpoint back for search, and continuing a build keeps it
    code, out, _ = run(capsys, "search", "--index", index, "-k", "1", "--json", gallery_dir / "animals" / "img00.png")
    assert json.loads(out)["hits"][0]["id"] == "animals/img00.png"
    code, _, err = run(capsys, "index", "build", gallery_dir, "--index", index)
    assert code == 0 and "12 unchanged" in err


def test_bench_regions_reports_every_kind_for_both_splits(built, gallery_dir, capsys):
    code, out, _ = run(capsys, "bench", "regions", gallery_dir, "--index", built, "-n", "2", "--json")
    row = json.loads(out)
    from semcopy_lib.data.webpages import chromium_path

    kinds = {"clean", "screenshot", "collage", "background", "composite"} | ({"webpage"} if chromium_path() else set())
    assert code == 0 and list(row["splits"]) == ["tuning", "held-out"]
    for part in row["splits"].values():
        assert set(part["kinds"]) == kinds
        assert part["not_made"] == ({} if chromium_path() else {"webpage": "Chromium not found (apt-get install chromium)"})
        assert all(v["queries"] == 2 and 0 <= v["r1_regions"] <= 1 for v in part["kinds"].values())
        assert "box50" in part["kinds"]["screenshot"] and "box50" not in part["kinds"]["clean"]
        assert all(("r1_box" in v) == (kind != "clean") for kind, v in part["kinds"].items())
        assert {"both2_whole", "both2_regions"} <= set(part["kinds"]["composite"])
        # a twin's hit only adds to the strict figure
        assert all(v["r1_picture"] >= v["r1_regions"] for v in part["kinds"].values())
        assert part["kinds"]["composite"]["both2_picture"] >= part["kinds"]["composite"]["both2_regions"]
        assert part["seconds_regions"] > 0


def test_box_found_searches_the_true_box_and_wants_a_composites_drawing(built, gallery_dir, tmp_path):
    """A gallery picture pasted at a known box on a picture from no gallery: its box's crop finds it
    first, a box beside it does not; a composite's box is judged on its drawing only, so the photo it
    was pasted on (``also``) does not count there."""
    import random

    from semcopy_lib.app import SearchService
    from semcopy_lib.data import compose
    from semcopy_lib.eval.regions import RegionQuery, box_found

    picture = Image.open(gallery_dir / "animals" / "img00.png").convert("RGB").resize((160, 120))
    query = compose.random_picture(random.Random(3), (480, 360))
    query.paste(picture, (250, 200))
    path = tmp_path / "q.png"
    query.save(path)
    asked = [RegionQuery(path, "background", "animals/img00.png", (250, 200, 160, 120)),
             RegionQuery(path, "background", "animals/img00.png", (10, 10, 160, 120)),
             RegionQuery(path, "composite", "food/img01.png", (250, 200, 160, 120), also="animals/img00.png")]
    service = SearchService(built)
    assert box_found(service, asked, tmp_path / "box") == [True, False, False]
    assert Image.open(tmp_path / "box" / "00000-q.png").size == (160, 120)


def test_bench_regions_says_which_kinds_it_could_not_make(built, gallery_dir, capsys, monkeypatch):
    """Without Chromium there are no web-page queries: the report names the kind and why, in JSON and in
    its text, instead of leaving the row out silently."""
    from semcopy_lib.data import webpages

    monkeypatch.setattr(webpages, "chromium_path", lambda: None)
    code, out, _ = run(capsys, "bench", "regions", gallery_dir, "--index", built, "-n", "1", "--split", "tuning")
    assert code == 0
    assert "[tuning] no webpage queries: Chromium not found (apt-get install chromium)" in out.splitlines()
    assert not any(line.startswith("webpage") for line in out.splitlines())  # no row for it


def test_the_regions_splits_hide_different_classes_and_compose_differently(gallery_dir, tmp_path):
    from semcopy_lib.eval.regions import STYLES, make_region_queries

    made = {split: make_region_queries(gallery_dir, tmp_path / split, per_kind=3, split=split,
                                       kinds=("collage", "composite"))
            for split in ("tuning", "held-out")}
    # folders alternate over animals, food, shapes/stars: the held-out split hides food only
    assert {q.gallery_id.split("/")[0] for q in made["tuning"]} == {"animals", "shapes"}
    assert {q.gallery_id.split("/")[0] for q in made["held-out"]} == {"food"}
    # a composite's background is an opaque gallery picture, a different half for each split
    hosts = {split: {q.also for q in queries if q.kind == "composite"} for split, queries in made.items()}
    assert all(hosts.values()) and not hosts["tuning"] & hosts["held-out"]
    tiles = {split: {Image.open(q.path).size for q in queries if q.kind == "collage"} for split, queries in made.items()}
    assert STYLES["tuning"].tiles != STYLES["held-out"].tiles and not tiles["tuning"] & tiles["held-out"]


def test_submit_writes_the_hackathon_csv(built, gallery_dir, tmp_path, capsys):
    import csv
    import random

    queries = tmp_path / "queries"
    queries.mkdir()
    original = Image.open(gallery_dir / "animals" / "img03.png").convert("RGB")
    jpeg(crop_fraction(original, random.Random(1)), 70).save(queries / "q1.jpg")
    (queries / "broken.png").write_bytes(b"\0\0\0")
    (queries / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    out = tmp_path / "submission.csv"
    code, _, err = run(capsys, "submit", "--index", built, "--queries", queries, "--out", out)
    assert code == 0 and "broken.png" in err
    assert "logo.svg: an SVG drawing, which semcopy does not render" in err  # said, not silently dropped
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "recs"] and [r["image"] for r in rows] == ["broken.png", "q1.jpg"]
    assert rows[0]["recs"] == ""
    recs = rows[1]["recs"].split(",")
    assert len(recs) == 10 and recs[0] == "img03.png" and len(set(recs)) == 10


def test_eval_on_a_query_list(built, gallery_dir, tmp_path, capsys):
    import random

    original = Image.open(gallery_dir / "animals" / "img03.png").convert("RGB")
    jpeg(crop_fraction(original, random.Random(2)), 70).save(tmp_path / "crop.jpg")
    pattern_image(7).save(tmp_path / "stranger.png")  # in no gallery: only µAP can reward a low score
    lines = [{"query": "crop.jpg", "relevant": ["animals/img03.png"], "kind": "crop"},
             {"query": "stranger.png", "relevant": [], "kind": "no match"},
             {"query": "missing.jpg", "relevant": ["animals/img03.png"], "kind": "crop"}]  # a miss, not left out
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, out, err = run(capsys, "eval", "--index", built, "--queries", qfile, "--json")
    table = json.loads(out)
    assert code == 0 and set(table) == {"crop", "no match", "all"}
    # the crop found first; the missing file counts against every figure (µAP: 1 of 2 copies, at rank 1)
    assert table["crop"] == {"queries": 2, "failed": 1, "r1": 0.5, "r10": 0.5, "map10": 0.5, "mrr": 0.5, "uap": 0.5}
    assert "missing.jpg" in err and "counted as a miss" in err
    assert table["no match"]["r1"] is None and table["no match"]["uap"] == 0.0
    assert table["all"]["queries"] == 3 and table["all"]["failed"] == 1 and 0 < table["all"]["uap"] <= 0.5
    qfile.write_text('{"query": "crop.jpg"}\nnot json\n')
    code, _, err = run(capsys, "eval", "--index", built, "--queries", qfile)
    assert code == 2 and f"{qfile}:2: not a query line" in err and len(err.strip().splitlines()) == 1


def test_bench_speed_quick_prints_one_json_object_with_every_figure(gallery_dir, capsys, monkeypatch):
    monkeypatch.delenv("SEMCOPY_RUNTIME", raising=False)  # the default runtime (tests otherwise ask for onnx)
    assert main(["bench", "speed", str(gallery_dir), "--quick", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    for key in ("ingest_img_per_s", "ingest_naive_img_per_s", "query_p50_ms", "query_p95_ms",
                "search_1m_recall_at_20", "search_1m_ms_per_query", "search_1m_index_bytes"):
        assert isinstance(row[key], (int, float)) and row[key] > 0, key
    assert row["query_gallery_vectors"] == 500 and row["search_1m_vectors"] == 5_000
    assert row["query_scan"] == "float32 or a GPU: nothing timed"  # 500 vectors: under SCREEN_MIN
    assert row["query_p50_ms"] <= row["query_p95_ms"] and 0 < row["search_1m_recall_at_20"] <= 1
    from semcopy_lib.query.clock import STAGES

    # where a query's time goes, per stage, for both halves (which half takes longer in a stage is a
    # matter of timing: on a loaded machine a copy's embedding has taken longer than an unseen picture's)
    copy, unseen = row["query_copy_stages_ms"], row["query_unseen_stages_ms"]
    assert list(copy) == list(unseen) == list(STAGES) and min(copy.values()) >= 0 and min(unseen.values()) >= 0
    assert unseen["propose"] > 0 and unseen["embed"] > 0 and copy["embed"] > 0
    assert isinstance(row["machine"], str) and row["machine"]
    # the optimised path (the naive one is eager PyTorch): OpenVINO in mixed bf16 where it runs bf16
    # natively, else ONNX Runtime
    from semcopy_lib.encoders.openvino_runtime import openvino_bf16

    mixed = openvino_bf16()
    assert row["runtime"] == ("openvino" if mixed else "onnx")
    assert row["precision"] == ("mixed-bf16" if mixed else "fp32")
    assert _least_cosine(row) <= row["ingest_min_cosine"] <= 1.0


def test_bench_speed_names_the_cpu_by_family_clock_and_vector_instructions(monkeypatch):
    from semcopy_lib.eval.speed import machine

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    zen = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
           "cpu MHz\t\t: 1996.248\nflags\t\t: fpu sse2 avx fma avx2\n\nprocessor\t: 1\nmodel name\t: other\n")
    assert machine(zen).startswith("AMD EPYC (family 23, model 1, 1996 MHz, AVX2), ")
    xeon = "model name\t: Intel(R) Xeon(R)\ncpu family\t: 6\nmodel\t\t: 143\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile\n"
    assert machine(xeon).startswith("Intel(R) Xeon(R) (family 6, model 143, AMX), ")
    assert ", torch " in machine("") and "(" not in machine("").split(",")[0]  # no /proc/cpuinfo: the platform's name


def _least_cosine(row: dict) -> float:
    """The lowest cosine ``bench speed``'s numerics check may report against the naive eager fp32 vectors
    for the run ``row``: ONNX Runtime's are the same; mixed bf16's (the default where the CPU runs bf16
    natively) within the sanity guard of the project's rule for a faster default."""
    return 0.995 if row["precision"] == "mixed-bf16" else 0.99999


def test_bench_speed_skips_a_file_it_cannot_decode(gallery_dir, tmp_path, capsys):
    """Refused files (here not images) are left out of both ingestions and of the copy queries."""
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(gallery_dir, folder)
    for path in sorted(folder.rglob("*.png"))[::2]:  # half of the 12 files, which --quick all ingests
        path.write_bytes(b"not an image at all")
    assert main(["bench", "speed", str(folder), "--quick", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["ingest_images"] == 12 and _least_cosine(row) <= row["ingest_min_cosine"] <= 1.0


@pytest.mark.parametrize("bench", ["speed", "regions", "copies", "crops", "dedup", "encoders", "calibrate"])
def test_a_benchmark_given_no_usable_picture_says_so_in_one_line(bench, built, tmp_path, capsys):
    """An empty folder, and one whose image files are not images: one line naming the folder, exit 2
    (was a ZeroDivisionError, an IndexError or imagededup's ValueError traceback, or "error: line_art"),
    also once ultralytics has replaced PIL's Image.open (its wrapper fails on unknown files in its own way)."""
    import ultralytics.utils.patches  # noqa: F401  (applies the patch, as loading a detector does)

    empty, junk = tmp_path / "empty", tmp_path / "junk"
    empty.mkdir()
    junk.mkdir()
    (junk / "a.png").write_text("not a picture")
    (junk / "b.jpg").write_bytes(b"\xff\xd8\xff")
    extra = {"regions": ["--index", built, "-n", 2], "copies": ["--index", built, "-n", 2], "crops": ["--index", built],
             "calibrate": ["--index", built, "-n", 2], "speed": ["--quick"], "encoders": ["-n", 2]}.get(bench, [])
    code, _, err = run(capsys, "bench", bench, empty, *extra)
    assert (code, err) == (2, f"semcopy: error: {empty}: no image files found (a benchmark draws its pictures from them)\n")
    if bench == "calibrate":
        return  # draws from the folder as regions and copies do
    code, _, err = run(capsys, "bench", bench, junk, *extra)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith(f"semcopy: error: {junk}: ") and ("could be read" in last or "no readable" in last)
    assert "Traceback" not in err


def test_bench_speed_measures_the_encoder_it_is_given_both_ways(gallery_dir, tiny_clip_dir, capsys):
    """--encoder/--encoder-path reach the naive loop too: its vectors are the same weights' (cosine 1)."""
    assert main(["bench", "speed", str(gallery_dir), "--quick", "--json", "--encoder", "clip-vit-b32",
                 "--encoder-path", str(tiny_clip_dir)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["encoder"], row["runtime"], row["precision"]) == ("clip-vit-b32", "torch", "fp32")
    assert row["ingest_images"] == 12 and 0.99999 <= row["ingest_min_cosine"] <= 1.0


def test_index_optimise_reports_recall_and_search_still_finds_copies(built, gallery_dir, tmp_path, capsys):
    import shutil

    index = tmp_path / "idx"
    shutil.copytree(built, index)
    assert main(["index", "optimise", "--index", str(index), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["index"].startswith("IVF") and report["index"].endswith(",SQ8") and 0 < report["recall_at_k"] <= 1
    _, out, _ = run(capsys, "index", "info", "--index", index, "--json")
    ivf = json.loads(out)["vector_index"]
    assert ivf.startswith("IVF")
    code, _, err = run(capsys, "index", "optimise", "--index", index)  # once is enough
    assert code == 2 and err == f"semcopy: error: {index}: nothing to optimise (already {ivf})\n"
    query = gallery_dir / "food" / "img04.png"
    code, out, _ = run(capsys, "search", "--index", index, "--json", "-k", "1", "--no-regions", query)
    assert code == 0 and json.loads(out)["hits"][0]["id"] == "food/img04.png"


def test_search_json_on_a_machine_never_used_before_prints_only_json(built, gallery_dir, tmp_path):
    """The first run on a machine writes ultralytics' settings file; its notice must not reach stdout."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "SEMCOPY_CACHE")}
    env["SEMCOPY_CACHE"] = str(tmp_path / "fresh-cache")
    query = gallery_dir / "food" / "img04.png"
    done = subprocess.run([sys.executable, "-m", "semcopy_lib.cli", "search", "--index", str(built), "--json", str(query)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh-cache" / "ultralytics").is_dir()  # the first run did happen here
    [line] = done.stdout.splitlines()
    assert json.loads(line)["hits"][0]["id"] == "food/img04.png"


def test_submit_names_repeated_file_names_by_their_paths(gallery_dir, tmp_path, capsys):
    import csv
    import shutil

    gallery = tmp_path / "gallery"
    for folder, source in (("cats", "animals/img00.png"), ("dogs", "animals/img03.png"), ("food", "food/img01.png")):
        (gallery / folder).mkdir(parents=True)
        shutil.copyfile(gallery_dir / source, gallery / folder / "x.png")  # three files called x.png
    assert main(["index", "build", str(gallery), "--index", str(tmp_path / "idx")]) == 0
    queries = tmp_path / "queries"
    for folder in ("a", "b"):
        (queries / folder).mkdir(parents=True)
    shutil.copyfile(gallery / "dogs" / "x.png", queries / "a" / "q.png")
    shutil.copyfile(gallery / "cats" / "x.png", queries / "b" / "q.png")
    capsys.readouterr()
    out = tmp_path / "submission.csv"
    assert main(["submit", "--index", str(tmp_path / "idx"), "--queries", str(queries), "--out", str(out)]) == 0
    assert "names repeat" in capsys.readouterr().err
    with out.open(newline="") as fh:
        rows = {r["image"]: r["recs"].split(",") for r in csv.DictReader(fh)}
    assert set(rows) == {"a/q.png", "b/q.png"}
    assert rows["a/q.png"][0] == "dogs/x.png" and rows["b/q.png"][0] == "cats/x.png"
    assert sorted(rows["a/q.png"]) == ["cats/x.png", "dogs/x.png", "food/x.png"]


def test_encoders_says_which_cpu_runtime_is_asked_for(capsys, monkeypatch):
    monkeypatch.setattr("semcopy_lib.encoders.openvino_runtime.openvino_bf16", lambda: True)
    monkeypatch.setenv("SEMCOPY_RUNTIME", "openvino")
    code, out, _ = run(capsys, "encoders")
    assert code == 0 and out.splitlines()[-1] == (
        "CPU runtime: openvino ($SEMCOPY_RUNTIME: auto, the default: openvino where it runs bf16 natively, "
        "else onnx; onnx, exact fp32; openvino, mixed bf16: this CPU has native bf16; torch)")
    monkeypatch.delenv("SEMCOPY_RUNTIME")
    _, out, _ = run(capsys, "encoders")
    assert out.splitlines()[-1].startswith("CPU runtime: auto = openvino here (")
    monkeypatch.setattr("semcopy_lib.encoders.openvino_runtime.openvino_bf16", lambda: False)
    _, out, _ = run(capsys, "encoders")
    assert out.splitlines()[-1].startswith("CPU runtime: auto = onnx here (") and "no native bf16 here" in out.splitlines()[-1]
