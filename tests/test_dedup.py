"""`semcopy dedup`: groups of copies inside a gallery, each with its keeper."""

from __future__ import annotations

import base64
import csv
import json
import random
import shutil
from dataclasses import replace

import pytest
from PIL import Image, ImageOps

from semcopy_lib.app import build_index
from semcopy_lib.app.dedup import DEDUP, _components, _keeper_clusters, find_duplicates, neighbour_pairs, report_fragment
from semcopy_lib.cli import main
from semcopy_lib.data.synth import crop_jpeg
from semcopy_lib.segment.template import thumbnail


@pytest.fixture(scope="module")
def copies(gallery_dir, tmp_path_factory):
    """The 12 test photos plus: a byte-identical twin, a crop + JPEG, a mirror, a channel swap and a
    2x enlargement (the largest picture, so its group's keeper) of four of them."""
    root = tmp_path_factory.mktemp("dedup")
    gallery = root / "gallery"
    shutil.copytree(gallery_dir, gallery)
    rng = random.Random(0)
    shutil.copyfile(gallery / "animals" / "img00.png", gallery / "animals" / "img00-twin.png")
    food = Image.open(gallery / "food" / "img01.png").convert("RGB")
    crop_jpeg(food, rng).save(gallery / "food" / "img01-crop.jpg")
    photo = Image.open(gallery / "food" / "img04.png").convert("RGB")
    ImageOps.mirror(photo).save(gallery / "food" / "img04-mirror.png")
    r, g, b = photo.split()
    Image.merge("RGB", (b, g, r)).save(gallery / "food" / "img04-swapped.png")
    star = Image.open(gallery / "shapes" / "stars" / "img05.png").convert("RGB")
    star.resize((star.width * 2, star.height * 2)).save(gallery / "shapes" / "big-img05.png")
    index, _ = build_index(gallery, root / "idx", progress=False)
    return gallery, root / "idx", index


def test_copies_are_grouped_with_the_largest_picture_as_keeper(copies):
    _, _, index = copies
    groups = find_duplicates(index, 0.635)
    found = {g.keeper.gallery_id: (g.tier, {m.gallery_id for m in g.members[1:]}) for g in groups}
    assert found == {
        "food/img04.png": ("copy", {"food/img04-mirror.png", "food/img04-swapped.png"}),
        "animals/img00.png": ("exact", {"animals/img00-twin.png"}),
        "food/img01.png": ("copy", {"food/img01-crop.jpg"}),
        "shapes/big-img05.png": ("copy", {"shapes/stars/img05.png"}),
    }
    biggest = next(g for g in groups if g.keeper.gallery_id == "shapes/big-img05.png")
    assert (biggest.keeper.width, biggest.members[1].width) == (512, 256)  # the most pixels keep
    crop = next(g for g in groups if g.keeper.gallery_id == "food/img01.png").members[1]
    assert 0.635 <= crop.score < 1 and not crop.exact
    assert [len(g.members) for g in groups] == sorted((len(g.members) for g in groups), reverse=True)


def test_keeper_groups_do_not_chain_but_components_do():
    # A~B 0.9, B~C 0.8, A and C not copies: through B single linkage joins all three
    linked = {0: {1: 0.9}, 1: {0: 0.9, 2: 0.8}, 2: {1: 0.8}}
    assert _keeper_clusters([0, 1, 2], linked) == [(0, [1]), (2, [])]
    assert _components([0, 1, 2], linked, {0: 0, 1: 1, 2: 2}) == [(0, [1, 2])]


def test_cli_json_csv_and_html(copies, tmp_path, capsys, monkeypatch):
    _, index, _ = copies
    assert main(["dedup", "--index", str(index), "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert len(lines) == 4 and "4 groups of copies (threshold 0.635, keeper)" in captured.err
    exact = next(g for g in lines if g["tier"] == "exact")
    assert exact == {"tier": "exact", "keeper": "animals/img00.png", "size": 2,
                     "members": [{"id": "animals/img00.png", "score": 1.0, "exact": True, "joined": None,
                                  "joined_to": None, "width": 256, "height": 256},
                                 {"id": "animals/img00-twin.png", "score": 1.0, "exact": True, "joined": None,
                                  "joined_to": None, "width": 256, "height": 256}]}
    assert main(["dedup", "--index", str(index), "--csv", str(tmp_path / "d.csv"), "--html", str(tmp_path / "d.html")]) == 0
    with open(tmp_path / "d.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(g["size"] for g in lines) and set(rows[0]) == {"group", "tier", "id", "keeper", "score",
                                                                           "exact", "joined", "joined_to", "width", "height"}
    page = (tmp_path / "d.html").read_text()
    assert page.count("<section>") == 4 and page.count("data:image/png;base64,") == len(rows)
    # only the twins are left (lone images not joined by their pixels either)
    assert main(["dedup", "--index", str(index), "--threshold", "0.9999", "--lone-cosine", "0"]) == 0
    assert capsys.readouterr().out.startswith("group 1: 2 images, exact\n")
    # "-": the CSV on standard output (and nothing else there), no file named "-"
    monkeypatch.chdir(tmp_path)
    assert main(["dedup", "--index", str(index), "--csv", "-", "--threshold", "0.9999", "--lone-cosine", "0"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["group"], r["tier"], r["id"], r["keeper"], r["exact"]) for r in rows] == [
        ("1", "exact", "animals/img00.png", "animals/img00.png", "True"),
        ("1", "exact", "animals/img00-twin.png", "animals/img00.png", "True"),
        ("2", "exact", "food/img04.png", "food/img04.png", "True"),
        ("2", "exact", "food/img04-swapped.png", "food/img04.png", "True")]  # a grey photo: swapping changes no byte
    assert not (tmp_path / "-").exists()


def test_the_report_shows_a_member_whose_thumbnail_does_not_decode_without_it():
    """The index's thumbnail bytes are untrusted: the report embeds only those that decode."""
    good = thumbnail(Image.new("RGB", (64, 32), (200, 30, 30)))
    member = {"score": 0.9, "exact": False, "width": 64, "height": 32}
    group = {"tier": "copy", "keeper": "a/keep.png", "size": 2,
             "members": [{"id": "a/keep.png", **member}, {"id": "a/bad.png", **member}]}
    page = report_fragment([group], {"a/keep.png": good, "a/bad.png": b"<script>alert(1)</script>"})
    assert page.count("data:image/png;base64,") == 1 and base64.b64encode(good).decode() in page
    assert page.count('<div class="none">no thumbnail</div>') == 1 and "alert" not in page


def test_cli_pixel_check_keeps_photos_alike_apart_and_verify_0_turns_it_off(copies, capsys):
    _, index, _ = copies

    def groups(*flags):
        assert main(["dedup", "--index", str(index), "--threshold", "0.2", "--json", *flags]) == 0
        return {g["keeper"]: {m["id"] for m in g["members"][1:]} for g in map(json.loads, capsys.readouterr().out.splitlines())}

    checked = {"food/img04.png": {"food/img04-mirror.png", "food/img04-swapped.png"},
               "animals/img00.png": {"animals/img00-twin.png"}, "food/img01.png": {"food/img01-crop.jpg"},
               "shapes/big-img05.png": {"shapes/stars/img05.png"}}
    assert groups() == checked  # at a cosine this low only the pixel check (DedupConfig.verify) tells copies
    # unrelated photos at cosine 0.26 (0.06 over the threshold: not a rounding matter) join a group
    assert groups("--verify", "0")["animals/img00.png"] >= {"food/img10.png", "food/img04.png"}


def _marked_disc(lines: list[tuple[int, int, int, int]]) -> Image.Image:
    """A soft red disc (a radial gradient on white, no outline) with thin black ``lines`` drawn on it."""
    import numpy as np
    from PIL import ImageDraw

    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    inside = np.clip(1 - np.hypot(xx - 128, yy - 128) / 128, 0, 1)[..., None]
    image = Image.fromarray((inside * np.array([200, 40, 40]) + (1 - inside) * 255).astype(np.uint8))
    for line in lines:
        ImageDraw.Draw(image).line(line, fill="black", width=3)
    return image


def test_look_alikes_whose_colours_line_up_but_not_their_edges_stay_apart(tmp_path):
    # the same disc marked + and x: colours correlate 0.94, edge maps 0.38; the JPEG copy's edges line up
    gallery = tmp_path / "gallery" / "marks"
    gallery.mkdir(parents=True)
    plus = _marked_disc([(60, 128, 196, 128), (128, 60, 128, 196)])
    plus.save(gallery / "plus.png")
    plus.save(gallery / "plus-copy.jpg", quality=60)
    _marked_disc([(70, 70, 186, 186), (70, 186, 186, 70)]).save(gallery / "cross.png")
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)

    def groups(**config):
        found = find_duplicates(index, 0.2, config=replace(DEDUP, **config))
        return {g.keeper.gallery_id: {m.gallery_id for m in g.members[1:]} for g in found}

    assert groups() == {"marks/plus.png": {"marks/plus-copy.jpg"}}
    assert groups(edges=0) == {"marks/plus.png": {"marks/plus-copy.jpg", "marks/cross.png"}}


def test_two_drawings_of_a_series_that_pass_each_check_just_stay_apart(tmp_path):
    from PIL import ImageDraw

    def arrow(up: bool) -> Image.Image:  # a white arrow in a red square, pointing up or down
        image = Image.new("RGB", (256, 256), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle((8, 8, 247, 247), fill=(230, 0, 0))
        draw.rectangle((16, 16, 239, 239), outline="white", width=4)
        points = [(128, 40), (193, 130), (153, 130), (153, 215), (103, 215), (103, 130), (63, 130)]
        draw.polygon(points if up else [(x, 256 - y) for x, y in points], fill="white")
        return image

    # up and down line up at 0.81 in colour and 0.74 in edges (each over its bar, 1.54 together); the
    # JPEG copy of the up arrow at 1.00 and 1.00
    gallery = tmp_path / "gallery" / "arrows"
    gallery.mkdir(parents=True)
    arrow(True).save(gallery / "up.png")
    arrow(True).save(gallery / "up-copy.jpg", quality=70)
    arrow(False).save(gallery / "down.png")
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)

    def groups(**config):
        return [{m.gallery_id for m in g.members} for g in find_duplicates(index, 0.3, config=replace(DEDUP, **config))]

    assert groups() == [{"arrows/up.png", "arrows/up-copy.jpg"}]
    assert groups(together=0) == [{"arrows/up.png", "arrows/up-copy.jpg", "arrows/down.png"}]


def test_a_lone_sketch_or_close_crop_joins_the_group_of_its_picture_by_its_outlines_or_pixels(tmp_path, capsys):
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.data.synth import pencil_sketch

    # a red disc marked + with its pencil sketch and, shrunk to 200 px, pasted on a photo patch (20 px of
    # photo around it); the same disc marked x, sketched only
    gallery = tmp_path / "gallery" / "marks"
    gallery.mkdir(parents=True)
    plus = _marked_disc([(60, 128, 196, 128), (128, 60, 128, 196)])
    plus.save(gallery / "plus.png")
    pencil_sketch(plus).save(gallery / "plus-sketch.png")
    patch = Image.open(sorted(sample_photo_files().values())[3]).convert("RGB").resize((240, 240))
    patch.paste(plus.resize((200, 200)), (20, 20))
    patch.save(gallery / "plus-on-photo.jpg", quality=90)
    pencil_sketch(_marked_disc([(70, 70, 186, 186), (70, 186, 186, 70)])).save(gallery / "cross-sketch.png")
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)

    def groups(**config):  # at 0.9 no pair is over the cosine threshold: only lone images join
        found = find_duplicates(index, 0.9, config=replace(DEDUP, **config))
        return {g.keeper.gallery_id: {(m.gallery_id, m.joined) for m in g.members[1:]} for g in found}

    assert groups(lone_cosine=0) == {}
    assert groups() == {"marks/plus.png": {("marks/plus-on-photo.jpg", "pixels"), ("marks/plus-sketch.png", "outlines")}}
    assert groups(outlines=0) == {"marks/plus.png": {("marks/plus-on-photo.jpg", "pixels")}}  # no colour, no pixel match
    assert groups(lone_pixels=0) == {"marks/plus.png": {("marks/plus-sketch.png", "outlines")}}
    [group] = find_duplicates(index, 0.9)
    # a lone member's score: its cosine with the image it joined (the best of their views), under the threshold
    records, vectors = index.image_vectors(index.records())
    ids = [r.gallery_id for r in records]
    cosine, _ = neighbour_pairs(index, vectors, ids, 0.0)
    for m in group.members[1:]:
        assert m.joined_to == "marks/plus.png" and m.score < 0.9
        assert m.score == pytest.approx(cosine[tuple(sorted((ids.index(m.gallery_id), ids.index("marks/plus.png"))))])
    assert main(["dedup", "--index", str(tmp_path / "idx"), "--threshold", "0.9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "group 1: 3 images, copy" and lines[1] == "     keeper  256x256  marks/plus.png"
    assert sorted(line.split()[1:] for line in lines[2:4]) == [
        ["240x240", "marks/plus-on-photo.jpg", "(by", "its", "pixels,", "to", "marks/plus.png)"],
        ["256x256", "marks/plus-sketch.png", "(by", "its", "outlines,", "to", "marks/plus.png)"]]


def test_two_pages_of_one_template_showing_other_pictures_are_not_copies(tmp_path):
    from semcopy_lib.data import compose
    from semcopy_lib.data.samples import sample_photo_files

    # two grey photos, each in the same generated web page (one seed), and a JPEG of the first page: the
    # pages' thumbnails line up as pages, the pictures they hold do not
    photos = sorted(sample_photo_files().values())
    gallery = tmp_path / "gallery" / "pages"
    gallery.mkdir(parents=True)
    for name, photo in (("a", photos[2]), ("b", photos[3])):
        page, _ = compose.page(Image.open(photo).convert("L").convert("RGB"), random.Random(3), dark=False)
        page.save(gallery / f"{name}-page.png")
        if name == "a":
            page.save(gallery / "a-page-copy.jpg", quality=70)
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)
    assert [{m.gallery_id for m in g.members} for g in find_duplicates(index, 0.3)] == [
        {"pages/a-page.png", "pages/a-page-copy.jpg"}]


def _flag(colours: list[str], size: tuple[int, int] = (300, 200)) -> Image.Image:
    """Horizontal bands of ``colours``, top first, of equal height."""
    from PIL import ImageDraw

    flag = Image.new("RGB", size)
    for k, colour in enumerate(colours):
        ImageDraw.Draw(flag).rectangle((0, size[1] * k // len(colours), size[0], size[1] * (k + 1) // len(colours)),
                                       fill=colour)
    return flag


def test_a_two_band_flag_is_not_a_copy_of_a_three_band_flag_that_holds_its_bands(tmp_path):
    # white over red lines up pixel for pixel with the lower two thirds of blue-white-red: any window of a
    # striped picture is another's crop; the crop that keeps all three bands is a copy
    gallery = tmp_path / "gallery" / "flags"
    gallery.mkdir(parents=True)
    three = _flag(["#1030c0", "white", "#d01010"])
    three.save(gallery / "three.png")
    three.crop((30, 20, 270, 185)).save(gallery / "three-crop.jpg", quality=85)
    _flag(["white", "#d01010"]).save(gallery / "two.png")
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)

    def groups(**config):
        return [{m.gallery_id for m in g.members} for g in find_duplicates(index, 0.3, config=replace(DEDUP, **config))]

    assert groups() == [{"flags/three.png", "flags/three-crop.jpg"}]
    assert groups(striped=0) == [{"flags/three.png", "flags/three-crop.jpg", "flags/two.png"}]


def test_bench_dedup_scores_pairs_against_the_known_groups(gallery_dir, gallery_index, capsys):
    from semcopy_lib.eval.dedup import pair_scores

    # hand-computed: groups {a, b, c} (source 0) and {d, e} (source 1); found {a, b}, {c, d}
    truth = {"g0/original.png": 0, "g0/crop.png": 0, "g0/mirror.png": 0, "g1/original.png": 1, "g1/jpeg.png": 1,
             "distinct/d0.png": -1}
    kinds = {name: name.split("/")[1].removesuffix(".png") for name in truth}
    found = [{"g0/original.png", "g0/crop.png"}, {"g0/mirror.png", "g1/original.png"}]
    scores = pair_scores(found, truth, kinds)
    assert (scores["precision"], scores["recall"], scores["pairs_found"], scores["pairs_true"]) == (0.5, 0.25, 2, 4)
    assert scores["recall_per_kind"] == {"crop": 1.0, "mirror": 0.0, "jpeg": 0.0}
    assert main(["bench", "dedup", str(gallery_dir), "--groups", "2", "--distinct", "2", "--split", "tuning",
                 "--synthetic", "300", "--index", str(gallery_index), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["synthetic"]["vectors"] == 300 and set(report["synthetic"]) == {"vectors", "seconds", "groups", "index"}
    row = report["splits"]["tuning"]
    assert row["images"] == 2 * 4 + 2 and set(row) == {"images", "groups", "semcopy", "phash", "backbone"}
    assert row["semcopy"]["pairs_true"] == 2 * 6 and row["semcopy"]["threshold"] == 0.635


def test_move_to_is_a_dry_run_then_moves_the_copies_out_and_undo_brings_them_back(copies, tmp_path, capsys):
    source_gallery, _, _ = copies
    gallery = tmp_path / "gallery"
    shutil.copytree(source_gallery, gallery)
    index_dir = tmp_path / "idx"
    build_index(gallery, index_dir, progress=False)
    before = sorted(p.relative_to(gallery).as_posix() for p in gallery.rglob("*.*"))
    copies_of = ["animals/img00-twin.png", "food/img01-crop.jpg", "food/img04-mirror.png", "food/img04-swapped.png",
                 "shapes/stars/img05.png"]
    dest = tmp_path / "moved"

    assert main(["dedup", "--index", str(index_dir), "--move-to", str(dest)]) == 0
    out, err = capsys.readouterr()
    planned = [line.split(" -> ")[1] for line in out.splitlines() if line.startswith("would move ")]
    assert sorted(planned) == sorted(str(dest / c) for c in copies_of) and out.startswith("group 1: ")
    assert "dry run: 5 files would move" in err and not dest.exists()

    assert main(["dedup", "--index", str(index_dir), "--move-to", str(dest), "--yes"]) == 0
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.*") if p.suffix != ".jsonl") == sorted(copies_of)
    assert not any((gallery / c).exists() for c in copies_of)
    log = dest / "semcopy-moves.jsonl"
    assert sorted(json.loads(line)["id"] for line in log.read_text().splitlines()) == sorted(copies_of)
    from semcopy_lib.index import GalleryIndex

    assert len(GalleryIndex.open(index_dir, read_only=True)) == len(before) - 5
    capsys.readouterr()
    assert main(["dedup", "--index", str(index_dir), "--json"]) == 0
    assert capsys.readouterr().out == ""  # no copies left in the gallery

    assert main(["dedup", "--index", str(index_dir), "--undo", str(log)]) == 0
    assert sorted(p.relative_to(gallery).as_posix() for p in gallery.rglob("*.*")) == before
    assert len(GalleryIndex.open(index_dir, read_only=True)) == len(before)
    assert not log.exists() and log.with_name("semcopy-moves.jsonl.undone").exists()


def test_undo_from_another_folder_brings_back_what_a_relative_move_moved(copies, tmp_path, monkeypatch, capsys):
    source_gallery, _, _ = copies
    work = tmp_path / "work"
    shutil.copytree(source_gallery, work / "gallery")
    build_index(work / "gallery", work / "idx", progress=False)
    before = sorted(p.relative_to(work / "gallery").as_posix() for p in (work / "gallery").rglob("*.*"))
    monkeypatch.chdir(work)
    assert main(["dedup", "--index", "idx", "--move-to", "moved", "--yes"]) == 0
    assert len(list((work / "moved").rglob("*.png"))) + len(list((work / "moved").rglob("*.jpg"))) == 5
    # an older semcopy logged paths as given, relative to the folder it ran in
    log = work / "moved" / "semcopy-moves.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps({"id": e["id"], "from": f"gallery/{e['id']}", "to": f"moved/{e['id']}"}) + "\n"
                           for e in entries))
    # one file cannot go back: its place is taken
    blocker = work / "gallery" / entries[0]["id"]
    blocker.write_bytes(b"not the image")
    monkeypatch.chdir(work / "gallery")  # not the folder the move ran in: "to" is found beside the log
    capsys.readouterr()
    assert main(["dedup", "--index", str(work / "idx"), "--undo", str(log)]) == 1
    err = capsys.readouterr().err
    assert err.count("(not moved back)") == 1 and "moved 4 files back; 4 indexed again" in err
    # the log keeps the file left, so undoing again finishes the job
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()] == [entries[0]["id"]]
    blocker.unlink()
    monkeypatch.chdir(work)
    assert main(["dedup", "--index", "idx", "--undo", str(log)]) == 0
    assert sorted(p.relative_to(work / "gallery").as_posix() for p in (work / "gallery").rglob("*.*")) == before
    assert not log.exists() and log.with_name("semcopy-moves.jsonl.undone").exists()


def test_a_group_whose_files_changed_since_indexing_is_not_moved(copies, tmp_path, capsys):
    source_gallery, _, _ = copies
    gallery = tmp_path / "gallery"
    shutil.copytree(source_gallery, gallery)
    build_index(gallery, tmp_path / "idx", progress=False)
    twin = gallery / "animals" / "img00-twin.png"
    shutil.copyfile(gallery / "food" / "img07.png", twin)  # no longer a copy, though the index says so
    dest = tmp_path / "moved"
    capsys.readouterr()
    assert main(["dedup", "--index", str(tmp_path / "idx"), "--move-to", str(dest), "--yes"]) == 0
    err = capsys.readouterr().err
    assert f"semcopy: {twin}: changed or gone since it was indexed; its group is not moved" in err
    assert twin.is_file() and (gallery / "animals" / "img00.png").is_file() and not (dest / "animals").exists()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.*") if p.suffix != ".jsonl") == \
        ["food/img01-crop.jpg", "food/img04-mirror.png", "food/img04-swapped.png", "shapes/stars/img05.png"]


@pytest.mark.parametrize("args, said", [
    (["--threshold", "5"], "--threshold 5.0: a cosine, -1 to 1"),
    (["--threshold", "nan"], "--threshold nan: a cosine, -1 to 1"),
    (["--neighbours", "-3"], "--neighbours -3: at least 1"),
    (["--csv", "/nonexistent/x.csv"], "/nonexistent/x.csv: no folder /nonexistent to write it in"),
    (["--html", "/nonexistent/x.html"], "/nonexistent/x.html: no folder /nonexistent to write it in"),
    (["--csv", "-", "--json"], "--csv - and --json: both would go to standard output; choose one"),
])
def test_bad_dedup_arguments_are_one_line(copies, capsys, args, said):
    _, index_dir, _ = copies
    assert main(["dedup", "--index", str(index_dir), *args]) == 2
    assert capsys.readouterr().err == f"semcopy: error: {said}\n"


def test_moving_copies_into_the_gallery_or_onto_a_file_is_refused(copies, tmp_path, capsys):
    gallery, index_dir, _ = copies
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["dedup", "--index", str(index_dir), "--move-to", str(afile), "--yes"]) == 2
    assert capsys.readouterr().err == f"semcopy: error: {afile}: not a folder\n" and afile.read_text() == "mine"
    inside = gallery / "dups"
    assert main(["dedup", "--index", str(index_dir), "--move-to", str(inside), "--yes"]) == 2
    assert capsys.readouterr().err.startswith(f"semcopy: error: {inside}: inside the gallery folder") and not inside.exists()


def test_undo_of_a_file_that_is_not_a_moves_log_is_one_line_and_moves_nothing(copies, tmp_path, capsys):
    _, index_dir, _ = copies
    log = tmp_path / "semcopy-moves.jsonl"
    log.write_text('{"id": "a.png", "from": "/x/a.png", "to": "/y/a.png"}\ngarbage\n')
    assert main(["dedup", "--index", str(index_dir), "--undo", str(log)]) == 2
    err = capsys.readouterr().err
    assert err == f"semcopy: error: {log}: line 2 is not an entry of a semcopy moves log\n"
    assert log.exists()


@pytest.fixture(scope="module")
def page_gallery(gallery_dir, tmp_path_factory):
    """The 12 test photos, one of them also at 600 px (``food/big.png``), and a web-page screenshot
    showing it in a card (smaller than 600 px there)."""
    from semcopy_lib.data import compose

    root = tmp_path_factory.mktemp("pages")
    gallery = root / "gallery"
    shutil.copytree(gallery_dir, gallery)
    photo = Image.open(gallery / "animals" / "img03.png").convert("RGB")
    big = photo.resize((600, 600 * photo.height // photo.width))
    big.save(gallery / "food" / "big.png")
    shot, box = compose.page(big, random.Random(1), dark=False)
    shot.save(gallery / "food" / "page.png")
    index, _ = build_index(gallery, root / "idx", progress=False)
    return index, box


def test_a_page_is_indexed_with_the_picture_it_holds_and_found_by_it(page_gallery, gallery_dir):
    from semcopy_lib.app.dedup import held_pictures
    from semcopy_lib.app.service import SearchService
    from semcopy_lib.segment import iou

    index, box = page_gallery
    held = held_pictures(index.records())
    assert {r.gallery_id for r in held.values()} == {"food/page.png"}  # no photo holds one
    assert max(iou(r.box, box) for r in held.values()) >= 0.8
    [result] = SearchService(index.directory).search([gallery_dir / "animals" / "img03.png"], k=4, regions=False)
    assert {h.gallery_id for h in result.hits[:3]} == {"animals/img03.png", "food/big.png", "food/page.png"}
    assert min(h.score for h in result.hits[:3]) >= 0.635 > result.hits[3].score  # copies, above every other image


def test_a_page_groups_with_the_picture_it_holds_which_is_kept(page_gallery):
    index, _ = page_gallery
    groups = find_duplicates(index, 0.635)
    found = {g.keeper.gallery_id: {m.gallery_id for m in g.members[1:]} for g in groups}
    # the page has the most pixels, the picture it holds fewer than the 600-px photo: that one is kept
    assert found == {"food/big.png": {"animals/img03.png", "food/page.png"}}
    page = next(m for m in groups[0].members if m.gallery_id == "food/page.png")
    records, vectors = index.image_vectors()
    ids = [r.gallery_id for r in records]
    whole = float(vectors[ids.index("food/page.png")] @ vectors[ids.index("food/big.png")])
    assert whole < 0.635 <= page.score  # the page as a whole is no copy: the picture it holds is


def test_a_picture_is_kept_before_a_page_that_shows_it_enlarged(gallery_dir, tmp_path):
    from semcopy_lib.data import compose

    # the 256-px photo, and a screenshot showing it enlarged (from 600 px): the page holds the larger
    # picture, the photo's file is the one to keep; the group is the same either way
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    photo = Image.open(gallery / "animals" / "img03.png").convert("RGB")
    shot, box = compose.page(photo.resize((600, 600 * photo.height // photo.width)), random.Random(1), dark=False)
    shot.save(gallery / "food" / "page.png")
    assert box[2] * box[3] > photo.width * photo.height
    index, _ = build_index(gallery, tmp_path / "idx", progress=False)
    [group] = find_duplicates(index, 0.635)
    assert group.keeper.gallery_id == "animals/img03.png"
    assert [m.gallery_id for m in group.members] == ["animals/img03.png", "food/page.png"]
    assert group.members[1].score >= 0.635  # its held picture's score with the photo


def test_a_held_picture_is_cut_from_the_page_file_or_else_from_its_thumbnail(tmp_path):
    from semcopy_lib.app.dedup import _held_picture
    from semcopy_lib.index import GalleryIndex, Record

    gallery, elsewhere = tmp_path / "gallery", tmp_path / "elsewhere"
    gallery.mkdir(), elsewhere.mkdir()
    index = GalleryIndex.create(tmp_path / "idx", {"name": "e"}, 16, root=gallery)
    page = Image.new("RGB", (800, 400), (255, 255, 255))
    page.paste((200, 0, 0), (400, 100, 600, 300))  # the picture: a red square at (400, 100), 200 px
    page.save(gallery / "page.png")
    page.save(elsewhere / "page.png")
    thumb = page.resize((96, 48))

    def cut_of(source):
        return _held_picture(index, Record(1, "page.png", "", "", (0, 0, 800, 400), "e", str(source)),
                             (400, 100, 200, 200), thumb)

    cut = cut_of(gallery / "page.png")
    assert cut.size == (96, 96) and cut.getpixel((48, 48)) == (200, 0, 0)  # the file, at thumbnail size
    # a file that is gone, or outside the gallery (an index's records could name any path): the thumbnail
    for source in (gallery / "moved.png", elsewhere / "page.png"):
        cut = cut_of(source)
        assert cut.size == (24, 24) and cut.getpixel((12, 12)) == (200, 0, 0)  # 200 px of 800 in a 96-px thumbnail


def test_bench_gallery_uses_one_picture_of_a_left_and_right_pair():
    from semcopy_lib.eval.dedup import _distinct_pictures

    left = Image.new("RGB", (64, 64), "white")
    left.paste((0, 0, 0), (0, 0, 32, 64))  # black left half
    right = ImageOps.mirror(left)  # black right half: the benchmark's own "mirror" copy of it
    top = Image.new("RGB", (64, 64), "white")
    top.paste((0, 0, 0), (0, 0, 64, 32))  # black top half: another picture
    kept = _distinct_pictures([("left", left), ("right", right), ("top", top)], 3)
    assert [name for name, _ in kept] == ["left", "top"]


def test_pixel_evidence_worked_out_picture_by_picture_is_the_pairs_own():
    from semcopy_lib.app.dedup import _evidence
    from semcopy_lib.segment.template import pixel_evidence

    # a marked disc cut out (transparent around), its crop on white, its mirror image, a flag; every pair
    from PIL import ImageDraw

    marked = _marked_disc([(60, 128, 196, 128), (128, 60, 140, 196)])
    round_mask = Image.new("L", marked.size, 0)
    ImageDraw.Draw(round_mask).ellipse((0, 0, 255, 255), fill=255)
    disc = marked.convert("RGBA")
    disc.putalpha(round_mask)
    pictures = {0: disc, 1: marked.crop((30, 20, 230, 240)), 2: ImageOps.mirror(disc),
                3: _flag(["#1030c0", "white", "#d01010"])}
    pictures = {k: p.resize((96, 96)) for k, p in pictures.items()}
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    found = _evidence(pairs, pictures, DEDUP.match)
    assert found == {(i, j): pixel_evidence(pictures[i], pictures[j], DEDUP.match) for i, j in pairs}
    assert found[0, 2] > 0.99 and found[0, 3] < DEDUP.verify  # the mirror image lines up, the flag does not
