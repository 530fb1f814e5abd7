"""``semcopy``: the command line (contract in DESIGN.md). Machine output on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

# Keep library imports inside the commands: `semcopy --help` and `semcopy encoders` stay quick.



class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from semcopy_lib.data import ImageLoadError, NoImages
    from semcopy_lib.data.trust import UntrustedWeights
    from semcopy_lib.encoders import EncoderUnavailable
    from semcopy_lib.index import EncoderMismatch, IndexDirError, IndexLocked

    return (CliError, ImageLoadError, NoImages, EncoderUnavailable, EncoderMismatch, IndexDirError, IndexLocked,
            UntrustedWeights, NotADirectoryError, KeyError)


def _print_mapping(data: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or one ``key: value`` line per item with the keys aligned."""
    if as_json:
        _print_json(data)
        return
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        if isinstance(value, dict):  # e.g. milliseconds by stage: "decode 1.2, embed 30.5"
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{key:>{width}}: {value}")


def _report(report, as_json: bool) -> None:
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if as_json:
        _print_json({"added": report.added, "replaced": report.replaced, "unchanged": report.unchanged,
                     "skipped": [{"file": p, "error": r} for p, r in report.skipped], "removed": report.removed,
                     "small_views": report.small_views})
    else:
        print(report.summary(), file=sys.stderr)
    if report.optimised:
        o = report.optimised
        shortlist = f", short list {o['shortlist']}" if "shortlist" in o else ""
        print(f"past {o['vectors']} vectors the index is now {o['index']} nprobe {o['nprobe']}{shortlist} "
              f"(recall@{o['k']} {o['recall_at_k']} against exact search)", file=sys.stderr)


def cmd_index_build(args: argparse.Namespace) -> int:
    from semcopy_lib.app import build_index

    if not Path(args.images_dir).is_dir():
        raise CliError(f"{args.images_dir}: not a folder")
    if args.encoder_path and Path(args.encoder_path).is_file():
        from semcopy_lib.data.trust import trust

        trust(args.encoder_path)  # named here, so the index may load it again (the manifest alone may not)
    index, report = build_index(args.images_dir, args.index, encoder=args.encoder, encoder_path=args.encoder_path,
                                batch_size=args.batch_size, device=args.device, backend=args.backend)
    _report(report, args.json)
    print(f"index {args.index}: {len(index)} images, encoder {index.encoder_name}, dim {index.dim}", file=sys.stderr)
    return 0


def cmd_index_sync(args: argparse.Namespace) -> int:
    from semcopy_lib.app.indexing import sync_folder, watch_folder
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(args.index)

    def said(report) -> None:
        for gallery_id in report.removed:
            there = index.root is not None and (index.root / gallery_id).exists()
            print(f"removed {gallery_id}: its file {'can no longer be read' if there else 'is gone'}", file=sys.stderr)
        _report(report, args.json)

    if args.watch:
        print(f"watching {args.folder} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            watch_folder(index, args.folder, said, batch_size=args.batch_size, device=args.device, progress=False)
        except KeyboardInterrupt:
            pass
        return 0
    said(sync_folder(index, args.folder, batch_size=args.batch_size, device=args.device))
    return 0


def cmd_index_add(args: argparse.Namespace) -> int:
    from semcopy_lib.app import add_paths
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(args.index)
    report = add_paths(index, args.paths, batch_size=args.batch_size, device=args.device)
    _report(report, args.json)
    return 0 if (report.added or report.replaced or report.unchanged or not report.skipped) else 1


def cmd_index_remove(args: argparse.Namespace) -> int:
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(args.index)
    missing = index.remove(args.ids)
    for gid in missing:
        print(f"not in the index: {gid}", file=sys.stderr)
    print(f"removed {len(set(args.ids)) - len(missing)}; index has {len(index)} images", file=sys.stderr)
    return 0 if not missing else 1


def cmd_index_info(args: argparse.Namespace) -> int:
    from semcopy_lib.app.indexing import query_config
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(args.index, read_only=True)
    info = index.info()
    info["query"] = query_config(index).to_dict()  # an older index searches with the defaults
    if not args.json:
        info.update(_dotted(info.pop("query"), "query"))
    _print_mapping(info, args.json)
    return 0


def cmd_index_settings(args: argparse.Namespace) -> int:
    """The index's saved search settings that differ from this version's defaults; ``--reset`` saves the
    defaults instead (an index keeps the settings it was built with, so it gains new defaults only so);
    ``--set KEY=VALUE`` saves one setting (checked as the manifest's are)."""
    from semcopy_lib.app.indexing import query_config
    from semcopy_lib.index import GalleryIndex
    from semcopy_lib.query import QueryConfig

    index = GalleryIndex.open(args.index, read_only=not (args.reset or args.set))
    try:
        current = query_config(index).to_dict()
        changed = {}
        if args.set:
            wanted = copy.deepcopy(current)
            for key, value in args.set:
                changed[key] = {"saved": _replace_setting(wanted, key, value), "now": value}
            try:
                QueryConfig.from_dict(wanted)
            except ValueError as exc:
                raise CliError(f"{args.index}: --set {exc}") from None
            index.set_query(wanted)
            current = wanted
        saved = _dotted(current, "query")
        defaults = QueryConfig().to_dict()
        differs = {key: {"saved": saved.get(key), "default": value}
                   for key, value in _dotted(defaults, "query").items() if saved.get(key) != value}
        if args.reset and differs:
            index.set_query(defaults)
    finally:
        index.close()
    if args.json:
        _print_json({"index": str(args.index), "differs": differs, "reset": bool(args.reset and differs), "set": changed})
        return 0
    if changed:
        for key, pair in changed.items():
            print(f"{key}: {json.dumps(pair['saved'])} -> {json.dumps(pair['now'])}")
        if any(key.startswith("query.pictures.") for key in changed):
            print(f"{args.index}: pictures.* settings apply to the files indexed from now on (the next "
                  f"`index sync` gives earlier files the shrunk view pictures.small asks for; build the index "
                  f"anew for the others)")
        return 0
    for key, pair in differs.items():
        print(f"{key}: {pair['saved']} -> {pair['default']}" if args.reset
              else f"{key}: {pair['saved']} (default: {pair['default']})")
    if not differs:
        print(f"{args.index}: its search settings are this version's defaults")
    elif args.reset:
        print(f"{args.index}: {len(differs)} search settings set to this version's defaults")
    else:
        print(f"{args.index}: {len(differs)} search settings differ from this version's defaults "
              f"(`semcopy index settings --reset` saves the defaults)")
    return 0


def _setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of `index settings --set`: the key as `index settings` prints it
    (``query.pictures.small``; the ``query.`` may be left out) and the value read as JSON."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. pictures.small=0")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not JSON (a number, true/false, "
                                         f"a list such as [0.5, 0.1] or [\"whole\"])") from None
    return (key if key.startswith("query.") else f"query.{key}"), parsed


def _replace_setting(query: dict[str, Any], key: str, value: Any) -> Any:
    """Set ``key`` (``query.a.b``) of a saved ``QueryConfig.to_dict()`` to ``value``; returns what it was.

    Raises:
        CliError: no such setting, or ``key`` names a group of them.
    """
    *parents, name = key.split(".")
    node: Any = query
    for part in parents[1:]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or name not in node or not parents:
        raise CliError(f"--set: no search setting {key} (`semcopy index info` lists them)")
    if isinstance(node[name], dict):
        raise CliError(f"--set: {key} is a group of settings; name one of them (`semcopy index info` lists them)")
    old, node[name] = node[name], value
    return old


def _dotted(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A nested dict as one level: ``{"query.merge.tile": [0.96, 0.0], ...}``."""
    flat = {}
    for key, value in data.items():
        flat.update(_dotted(value, f"{prefix}.{key}") if isinstance(value, dict) else {f"{prefix}.{key}": value})
    return flat


def _saved_small(index_dir: str) -> int:
    """The shrunk views' side that an index's saved search settings ask for (0 when they cannot be read:
    ``index verify`` says what is wrong with the manifest)."""
    from semcopy_lib.index import IndexDirError
    from semcopy_lib.index.directory import read_manifest
    from semcopy_lib.query import QueryConfig

    try:
        return QueryConfig.from_dict(read_manifest(Path(index_dir)).get("query")).pictures.small
    except (IndexDirError, ValueError, TypeError):
        return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    from semcopy_lib.index.verify import repair, verify

    report = verify(args.index, check_files=not args.no_files, small=_saved_small(args.index))
    if args.repair and report.repairable:
        print(f"{args.index}: repairing: {'; '.join(report.problems + report.warnings)}", file=sys.stderr)
        report = repair(args.index, rebuild=not report.ok)  # a consistent index only loses its temp files
    if args.json:
        _print_json(report.to_dict())
    else:
        state = "consistent" if report.ok else "INCONSISTENT"
        print(f"{args.index}: {state}: {report.images} images, {report.vectors} vectors")
        for line in report.problems:
            print(f"  problem: {line}")
        for line in report.warnings:
            print(f"  warning: {line}")
        if report.repair and not report.ok:
            print(f"  to repair: {report.repair}")
    return 0 if report.ok else 1


def cmd_index_optimise(args: argparse.Namespace) -> int:
    from semcopy_lib.index import GalleryIndex

    index = GalleryIndex.open(args.index)
    try:
        report = index.optimise(force=True)
    except ValueError as exc:
        print(f"semcopy: error: {args.index}: {exc}", file=sys.stderr)
        return 2
    if report is None:
        why = "empty index" if index.backend.count == 0 else f"already {index.info()['vector_index']}"
        print(f"semcopy: error: {args.index}: nothing to optimise ({why})", file=sys.stderr)
        return 2
    if args.json:
        _print_json(report)
    else:
        print(f"{args.index}: {report['index']} nprobe {report['nprobe']}, recall@{report['k']} "
              f"{report['recall_at_k']} against exact search, {report['bytes'] / 2**20:.1f} MB")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from semcopy_lib.app import SearchService
    from semcopy_lib.app.contract import search_json

    if args.k < 1:
        raise CliError(f"-k must be at least 1, not {args.k}")
    # key objects are one more kind of region: a detector (when its weights are here) only with regions
    service = (SearchService.with_objects(args.index, args.detector, device=args.device, read_only=True)
               if args.regions else SearchService(args.index, device=args.device, read_only=True))
    if args.encoder:
        service.index.check_encoder(args.encoder)
    # more queries than one chunk take a while before the first result is printed: a bar on stderr
    results = service.search(args.queries, k=args.k, batch_size=args.batch_size, regions=args.regions, vote=args.vote,
                             progress=len(args.queries) > service.config.chunk)
    for result in results:
        if args.json:
            _print_json(search_json(result))
        elif result.error:
            print(f"error: {result.error}", file=sys.stderr)
        else:
            print(f"{result.query}  [{result.layout}, {len(result.regions)} region(s)]")
            for rank, hit in enumerate(result.hits, 1):
                box = ",".join(map(str, hit.query_box))
                print(f"  {rank:>3}. {hit.score:.3f}  {hit.gallery_id}  (query {hit.region_kind} {box})")
    failed = sum(r.error is not None for r in results)
    if failed and (args.strict or failed == len(results)):
        return 1
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    import csv

    from semcopy_lib.app import SearchService
    from semcopy_lib.app.contract import SUBMISSION_COLUMNS, submission_row
    from semcopy_lib.data import scan_folder

    not_images: list[tuple[str, str]] = []
    queries = sorted(str(f.path) for f in scan_folder(args.queries, skipped=not_images))
    for path, reason in not_images:
        print(f"semcopy: {path}: {reason} (not a query)", file=sys.stderr)
    if not queries:
        raise CliError(f"{args.queries}: no query images found")
    service = SearchService(args.index, device=args.device, read_only=True)
    results = service.search(queries, k=10, batch_size=args.batch_size, progress=len(queries) > service.config.chunk)
    # file names where they name one file; else paths below the folder, for every row (never a collision)
    names = [Path(q).relative_to(args.queries).as_posix() for q in queries]
    if len({Path(n).name for n in names}) == len(names):
        names = [Path(n).name for n in names]
    else:
        print("semcopy: query file names repeat: images named by their path below the queries folder", file=sys.stderr)
    ids = [r.gallery_id for r in service.index.records()]
    full_ids = len({Path(i).name for i in ids}) < len(set(ids))
    if full_ids:
        print("semcopy: gallery file names repeat: recs named by gallery id (path below the gallery folder)", file=sys.stderr)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")  # a crash never leaves half a submission under the real name
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUBMISSION_COLUMNS)
        writer.writeheader()
        for result, name in zip(results, names):
            if result.error:
                print(f"semcopy: {result.error} (row left empty)", file=sys.stderr)
            writer.writerow(submission_row(result, image=name, full_ids=full_ids))
    tmp.replace(out)
    print(f"{len(results)} queries -> {out}", file=sys.stderr)
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    import csv

    from semcopy_lib.app import encoder_for_index
    from semcopy_lib.app.dedup import DEDUP, default_threshold, find_duplicates, report_fragment, report_html, rows_csv
    from semcopy_lib.index import GalleryIndex

    if args.undo:
        return _undo_dedup(args)
    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:  # nan fails both
        raise CliError(f"--threshold {args.threshold}: a cosine, -1 to 1")
    if args.neighbours is not None and args.neighbours < 1:
        raise CliError(f"--neighbours {args.neighbours}: at least 1")
    if args.csv == "-" and args.json:
        raise CliError("--csv - and --json: both would go to standard output; choose one")
    for out in (args.csv if args.csv != "-" else None, args.html):
        if out and not Path(out).absolute().parent.is_dir():
            raise CliError(f"{out}: no folder {Path(out).absolute().parent} to write it in")
    index = GalleryIndex.open(args.index, read_only=not args.move_to)
    if args.move_to:
        dest = Path(args.move_to)
        if dest.exists() and not dest.is_dir():
            raise CliError(f"{dest}: not a folder")
        if index.root is not None and dest.resolve().is_relative_to(index.root.resolve()):
            raise CliError(f"{dest}: inside the gallery folder {index.root}, where the next sync would index the copies "
                           "again; move them elsewhere")
    try:
        threshold = args.threshold if args.threshold is not None else default_threshold(encoder_for_index(index), args.level)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    config = replace(DEDUP, **{name: value for name, value in (("neighbours", args.neighbours), ("verify", args.verify),
                                                                         ("edges", args.edges), ("lone_cosine", args.lone_cosine),
                                                                         ("lone_pixels", args.lone_pixels), ("outlines", args.outlines))
                               if value is not None})
    groups = find_duplicates(index, threshold, level=args.level, method=args.method, config=config, progress=True)
    if args.json:
        for group in groups:
            _print_json(group.to_dict())
    elif not (args.csv or args.html):
        for n, group in enumerate(groups, start=1):
            print(f"group {n}: {len(group.members)} images, {group.tier}")
            for k, m in enumerate(group.members):
                what = "keeper" if k == 0 else ("same file" if m.exact else f"{m.score:.3f}")
                print(f"  {what:>9}  {m.width}x{m.height}  {m.gallery_id}" + (f"  (by its {m.joined}, to {m.joined_to})" if m.joined else ""))
    if args.csv:
        rows = rows_csv(groups)
        with (nullcontext(sys.stdout) if args.csv == "-" else open(args.csv, "w", newline="")) as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["group", "tier", "id", "keeper", "score",
                                                                                   "exact", "joined", "joined_to", "width", "height"])
            writer.writeheader()
            writer.writerows(rows)
    if args.html:
        thumbs = index.thumbs({m.gallery_id for g in groups for m in g.members})
        Path(args.html).write_text(report_html(report_fragment(groups, thumbs), f"semcopy dedup: {args.index}"),
                                   encoding="utf-8")
    extra = sum(len(g.members) - 1 for g in groups)
    print(f"{len(groups)} groups of copies (threshold {threshold:.3f}, {args.method}): {extra} images besides their "
          f"keepers, of {len(index)}", file=sys.stderr)
    if args.move_to:
        _move_copies(args, index, groups)
    return 0


def _move_copies(args: argparse.Namespace, index, groups) -> None:
    """``--move-to``: say what would move (a dry run) or, with ``--yes``, move it and drop it from the index."""
    from semcopy_lib.app.dedup import MOVES_LOG, move_copies, planned_moves, unchanged_groups

    groups, stale = unchanged_groups(groups, {r.gallery_id: r.sha256 for r in index.records()})
    for line in stale:
        print(f"semcopy: {line}", file=sys.stderr)
    moves = planned_moves(groups, args.move_to)
    log = Path(args.move_to) / MOVES_LOG
    if not args.yes:
        for _, src, dst in moves:
            print(f"would move {src} -> {dst}")
        print(f"dry run: {len(moves)} files would move to {args.move_to}; add --yes to move them (undo with "
              f"semcopy dedup --index {args.index} --undo {log})", file=sys.stderr)
        return
    Path(args.move_to).mkdir(parents=True, exist_ok=True)
    moved, left = move_copies(moves, args.move_to)
    for line in left:
        print(f"semcopy: {line}", file=sys.stderr)
    index.remove(moved)
    print(f"moved {len(moved)} files to {args.move_to} and took them out of the index; undo: "
          f"semcopy dedup --index {args.index} --undo {log}", file=sys.stderr)


def _undo_dedup(args: argparse.Namespace) -> int:
    """``--undo LOG``: the moved files go back and into the index again."""
    from semcopy_lib.app import add_paths
    from semcopy_lib.app.dedup import undo_moves
    from semcopy_lib.index import GalleryIndex

    if not Path(args.undo).is_file():
        raise CliError(f"{args.undo}: no such moves log")
    index = GalleryIndex.open(args.index)
    try:
        back, left = undo_moves(args.undo, index.root)
    except ValueError as exc:  # not a moves log
        raise CliError(str(exc)) from None
    for line in left:
        print(f"semcopy: {line}", file=sys.stderr)
    report = add_paths(index, back, progress=False) if back else None
    print(f"moved {len(back)} files back; {len(report.added) if report else 0} indexed again", file=sys.stderr)
    return 0 if not left else 1


def cmd_segment(args: argparse.Namespace) -> int:
    from semcopy_lib.app.contract import error_json, segment_json
    from semcopy_lib.data import ImageLoadError, load_image
    from semcopy_lib.query import QueryConfig
    from semcopy_lib.segment import analyse, scale_box

    failed = 0
    for path in args.images:
        try:
            # analysed at the size a search analyses it (a 100-Mpx scan in a second, not a minute)
            image = load_image(path, max_side=QueryConfig().max_side)
            layout = analyse(image)
        except ImageLoadError as exc:
            failed += 1
            _print_json(error_json("image", path, str(exc))) if args.json else print(f"error: {exc}", file=sys.stderr)
            continue
        if args.draw:
            _draw_layout(image, layout, Path(args.draw) / f"{Path(path).stem}.segment.png")
        (ow, oh), (w, h) = image.info["original_size"], image.size
        boxes = [scale_box(box, ow / w, oh / h) for box in layout.boxes]  # in the file's pixels
        if args.json:
            _print_json(segment_json(path, layout.layout, boxes))
        else:
            print(f"{path}: {layout.layout}, boxes {[list(b) for b in boxes]}")
    return 1 if failed == len(args.images) else 0


def _draw_layout(image, layout, out: Path) -> None:
    """``image`` with ``layout``'s boxes outlined and named as the dashboard draws them, saved to ``out``."""
    from semcopy_lib.app.results import QueryResult
    from semcopy_lib.app.overlay import draw_understanding

    out.parent.mkdir(parents=True, exist_ok=True)
    result = QueryResult(query=str(out), layout=layout.layout, regions=layout.regions(image.size))
    draw_understanding(image, result, side=max(image.size)).save(out)


def cmd_trust(args: argparse.Namespace) -> int:
    from semcopy_lib.data.trust import trust, trust_file

    for path in args.files:
        if not Path(path).is_file():
            raise CliError(f"{path}: no such file")
    for path in args.files:
        print(f"trusted {trust(path)}", file=sys.stderr)
    print(f"trust list: {trust_file()}", file=sys.stderr)
    return 0


def cmd_encoders(args: argparse.Namespace) -> int:
    from semcopy_lib.encoders import DEFAULT_ENCODER, list_encoders
    from semcopy_lib.encoders.onnx_runtime import runtime_note

    infos = list_encoders()
    if args.json:
        _print_json([i.to_dict() for i in infos])
    else:
        width = max(len(i.name) for i in infos)
        for info in infos:
            mark = "yes" if info.available else "no "
            default = " (default)" if info.name == DEFAULT_ENCODER else ""
            print(f"{info.name:<{width}}  available: {mark}  {info.note}{default}")
        print(runtime_note())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from semcopy_lib.dashboard.serve import serve

    return serve(args.index, host=args.host, port=args.port, token=args.token)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from semcopy_lib.api import create_app
    from semcopy_lib.app import SearchService
    from semcopy_lib.app.access import access_token, is_loopback

    token = access_token(args.host, args.token, always=True)  # writes always need one
    app = create_app(SearchService(args.index, device=args.device), token, protect_reads=not is_loopback(args.host))
    print(f"semcopy API on http://{args.host}:{args.port}/docs; token for "
          f"{'every request' if not is_loopback(args.host) else 'writes'}: {token}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from semcopy_lib.app import build_index
    from semcopy_lib.app.gallery_map import gallery_map
    from semcopy_lib.data.samples import build_sample_gallery

    root = Path(args.dir)
    gallery = build_sample_gallery(root)
    index_dir = root / "index"
    index, report = build_index(gallery, index_dir)
    gallery_map(index)  # the dashboard's map, cached beside the index (Binder builds it here, in postBuild)
    print(f"demo gallery {gallery}: {len(index)} images; try the queries in {root / 'queries'}", file=sys.stderr)
    if args.build_only:
        return 0
    from semcopy_lib.dashboard.serve import serve

    return serve(index_dir, host=args.host, port=args.port, token=args.token)


def cmd_bench_crops(args: argparse.Namespace) -> int:
    import tempfile

    from semcopy_lib.app import SearchService
    from semcopy_lib.eval import mrr, recall_at_k
    from semcopy_lib.eval.crops import make_crop_queries

    service = SearchService(args.index, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_crop_queries(args.images_dir, tmp, n=args.n, seed=args.seed)
        results = service.search([q for q, _ in pairs], k=10, batch_size=args.batch_size)
    ranked = [[h.gallery_id for h in r.hits] for r in results]
    truth = [gid for _, gid in pairs]
    row = {"bench": "crops", "queries": len(pairs), "gallery": len(service.index),
           "encoder": service.index.encoder_name, "recall@1": round(recall_at_k(ranked, truth, 1), 4),
           "recall@10": round(recall_at_k(ranked, truth, 10), 4), "mrr": round(mrr(ranked, truth), 4)}
    if args.json:
        _print_json(row)
    else:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _generated_bench(args: argparse.Namespace, name: str, run) -> dict[str, Any]:
    """Run a benchmark whose queries are generated into a temporary folder: ``run(service, images_dir, tmp)``;
    prints its rows per kind (per split and kind when it has splits)."""
    import tempfile

    from semcopy_lib.app import SearchService

    service = SearchService(args.index, device=args.device)
    service.progress = not args.json  # minutes of queries: each search's bar on stderr
    with tempfile.TemporaryDirectory() as tmp:
        row = run(service, args.images_dir, tmp)
    row.update(bench=name, gallery=len(service.index), encoder=service.index.encoder_name)
    if args.json:
        _print_json(row)
    else:
        for split, part in row.get("splits", {"": row}).items():
            if split:
                print(f"[{split}]")
            for kind, values in part["kinds"].items():
                print(f"{kind:<11}" + "  ".join(f"{k}={v}" for k, v in values.items()))
    return row


def cmd_bench_copies(args: argparse.Namespace) -> int:
    from semcopy_lib.eval.copies import run_copies_bench

    row = _generated_bench(args, "copies", lambda s, d, t: run_copies_bench(s, d, t, n=args.n, seed=args.seed,
                                                                             splits=_splits(args)))
    if not args.json:
        for split, part in row["splits"].items():
            print(f"[{split}] class-level mAP@10 over {part['images']} images: {part['class_map10']}")
    return 0


def cmd_bench_dedup(args: argparse.Namespace) -> int:
    from semcopy_lib.eval.dedup import run_dedup_bench, synthetic_grouping

    row = run_dedup_bench(args.images_dir, groups=args.groups, distinct=args.distinct, seed=args.seed,
                          splits=_splits(args), encoder_name=args.encoder, encoder_path=args.encoder_path)
    if args.synthetic:
        from semcopy_lib.app import encoder_for_index
        from semcopy_lib.index import GalleryIndex

        if not args.index:
            raise CliError("--synthetic needs --index: its image vectors are what the synthetic ones vary")
        index = GalleryIndex.open(args.index, read_only=True)
        row["synthetic"] = synthetic_grouping(args.synthetic, index.image_vectors()[1],
                                              encoder_for_index(index).copy_score or 0.9)
    if args.json:
        _print_json(row)
        return 0
    for split, part in row["splits"].items():
        for method in ("semcopy", "phash", "backbone"):
            if method in part:
                m = part[method]
                print(f"[{split}] {method:<9} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                      f"({m['pairs_found']} pairs found, {m['pairs_true']} true)  per kind: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in m["recall_per_kind"].items()))
    if "synthetic" in row:
        s = row["synthetic"]
        print(f"{s['vectors']} synthetic vectors grouped in {s['seconds']} s ({s['groups']} groups)")
    return 0


def _splits(args: argparse.Namespace) -> tuple[str, ...]:
    """The benchmark splits ``--split`` names (both by default)."""
    from semcopy_lib.eval.regions import SPLITS

    return SPLITS if args.split == "both" else (args.split,)


def cmd_bench_regions(args: argparse.Namespace) -> int:
    from semcopy_lib.eval.regions import run_regions_bench

    row = _generated_bench(args, "regions", lambda s, d, t: run_regions_bench(s, d, t, per_kind=args.n, seed=args.seed,
                                                                               splits=_splits(args)))
    if not args.json:
        for split, part in row["splits"].items():
            print(f"[{split}] subjects pasted on: {part['backgrounds']}; seconds regions / whole: "
                  f"{part['seconds_regions']} / {part['seconds_whole']}")
            for kind, why in part["not_made"].items():
                print(f"[{split}] no {kind} queries: {why}")
    return 0


def cmd_bench_calibrate(args: argparse.Namespace) -> int:
    import tempfile

    from semcopy_lib.eval.calibrate import collect, fit_merge

    with tempfile.TemporaryDirectory() as tmp:
        samples = collect(args.index, args.images_dir, tmp, per_kind=args.n, n_copies=args.copies, seed=args.seed,
                          split=args.split, device=args.device, progress=not args.json)
    try:
        merge, report = fit_merge(samples)
    except ValueError as exc:
        print(f"{args.index}: {exc}", file=sys.stderr)
        return 1
    if args.write:
        from semcopy_lib.app.indexing import query_config
        from semcopy_lib.index import GalleryIndex

        index = GalleryIndex.open(args.index)
        try:
            index.set_query(replace(query_config(index), merge=merge).to_dict())
        finally:
            index.close()
    if args.json:
        _print_json({"bench": "calibrate", "split": args.split, "kinds": report, "merge": asdict(merge)})
        return 0
    for kind, row in report.items():
        print(f"{kind:<9}" + "  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"query.merge fitted on the {args.split} split: {json.dumps(asdict(merge))}")
    return 0


def cmd_bench_encoders(args: argparse.Namespace) -> int:
    from semcopy_lib.eval.compare_encoders import REPORTED_KINDS, run_encoders_bench

    rows = run_encoders_bench(args.images_dir, n=args.n, seed=args.seed)
    if args.json:
        _print_json(rows)
        return 0
    cols = ["dim", "crops_r1", *[f"{k}_r1" for k in REPORTED_KINDS], "class_map10", "seconds"]
    print(f"{'encoder':<22}" + "".join(f"{c:>13}" for c in cols) + "  weights")
    for row in rows:
        print(f"{row['encoder']:<22}" + "".join(f"{row.get(c, '-')!s:>13}" for c in cols) + f"  {row['weights']}")
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    from semcopy_lib.eval.speed import run_speed_bench

    kw = dict(n_ingest=12, gallery_size=500, n_queries=6, million=5_000, nlist=64, scale_queries=20) if args.quick else dict(
        n_ingest=args.ingest, gallery_size=args.gallery, n_queries=args.queries, million=args.million, nlist=args.nlist)
    try:
        report = run_speed_bench(args.images_dir, backend=args.backend, encoder_name=args.encoder,
                                 encoder_path=args.encoder_path, synthetic=args.synthetic,
                                 compressed=args.compressed, progress=not args.json, **kw)
    except ValueError as exc:  # e.g. no room for the compressed index's file
        raise CliError(str(exc)) from None
    _print_mapping(report, args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from semcopy_lib.app import SearchService
    from semcopy_lib.eval.queries import evaluate_queries, load_queries

    try:
        queries = load_queries(args.queries)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not queries:
        raise CliError(f"{args.queries}: no query lines")
    report = evaluate_queries(SearchService(args.index, device=args.device, read_only=True), queries, regions=args.regions)
    for error in report["errors"]:
        print(f"semcopy: {error} (counted as a miss)", file=sys.stderr)
    if args.json:
        _print_json(report["kinds"])
    else:
        for kind, values in report["kinds"].items():
            print(f"{kind:<14}" + "  ".join(f"{k}={'-' if v is None else v}" for k, v in values.items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from semcopy_lib.train.fit import TrainConfig
    from semcopy_lib.train.run import train

    config = TrainConfig(encoder=args.encoder, encoder_path=args.encoder_path, epochs=args.epochs,
                         val_fraction=args.val_fraction, seed=args.seed,
                         weights={"triplet": args.triplet_weight, "infonce": 1.0 - args.triplet_weight})

    def show(row: dict) -> None:
        print("  ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr)

    report = train(args.images_dir, args.out, config, cache=args.cache, on_epoch=show)
    if args.json:
        _print_json({k: v for k, v in report.items() if k != "history"})
    else:
        print(f"checkpoint written to {report['checkpoint']} in {report['seconds']} s "
              f"({report['train_classes']} training classes, {report['val_classes']} held out)")
        for name in report["after"]:
            print(f"  {name:<18} {report['before'][name]:.3f} -> {report['after'][name]:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from semcopy_lib import __version__

    parser = argparse.ArgumentParser(prog="semcopy", description="Find semantic copies of images in a gallery.")
    parser.add_argument("--version", action="version", version=f"semcopy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, batch: bool = True) -> None:
        if batch:
            p.add_argument("--batch-size", type=int, default=32, help="images per encoder batch (default 32)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)")

    idx = sub.add_parser("index", help="build and change a gallery index")
    isub = idx.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    p = isub.add_parser("build", help="index every image below a folder (continues an interrupted build)")
    p.add_argument("images_dir", metavar="IMAGES_DIR")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--encoder", default=None,
                   help="see 'semcopy encoders' (default: the index's own encoder, or effnet-lite0-semcopy for a new index)")
    p.add_argument("--encoder-path", default=None, help="local weights folder for the encoder (e.g. a CLIP save_pretrained dir)")
    p.add_argument("--backend", choices=["faiss", "milvus"], default="faiss",
                   help="faiss (default: in the index folder) or milvus (Milvus Lite in the index folder, or the "
                        "server in $SEMCOPY_MILVUS_URI; needs pip install 'semcopy[milvus]')")
    p.add_argument("--json", action="store_true", help="print what was added/skipped as JSON")
    common(p)
    p.set_defaults(func=cmd_index_build)
    p = isub.add_parser("add", help="add image files or folders without a rebuild")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_index_add)
    p = isub.add_parser("sync", help="make the index hold exactly the images below a folder: add new and changed "
                        "files, remove those that are gone")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--watch", action="store_true", help="keep syncing as files change (Ctrl-C stops)")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_index_sync)
    p = isub.add_parser("remove", help="remove images by gallery id")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_index_remove)
    p = isub.add_parser("info", help="count, encoder and dimension of an index")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index_info)
    p = isub.add_parser("settings", help="the saved search settings that differ from this version's defaults "
                        "(an index keeps those it was built with); --reset saves the defaults, --set one setting")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--reset", action="store_true", help="save this version's default search settings in the index")
    how.add_argument("--set", action="append", type=_setting, metavar="KEY=VALUE", default=[],
                     help="save one search setting, e.g. pictures.small=0 or merge.subject=[0.5,0.2] (repeatable; "
                     "the keys `index settings` and `index info` print)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index_settings)
    p = isub.add_parser("verify", help="check that metadata, vectors and manifest agree; say how to repair")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--repair", action="store_true", help="rebuild the vector file from meta.sqlite when it is behind")
    p.add_argument("--no-files", action="store_true", help="do not check that the indexed image files are unchanged")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index_verify)
    p = isub.add_parser("optimise", help="turn exact search into IVF-SQ8 now (done by itself past 50,000 vectors; "
                        "past 4 GB of 8-bit vectors the index becomes compressed) and report its recall@20 "
                        "against exact search")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index_optimise)

    p = sub.add_parser("search", help="find the gallery images that are semantic copies of each query")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per query, one per line")
    p.add_argument("--encoder", default=None, help="must match the index's encoder when given")
    p.add_argument("--strict", action="store_true", help="exit 1 when any query fails (default: only when all do)")
    p.add_argument("--regions", action=argparse.BooleanOptionalAction, default=True,
                   help="also search the photo regions of screenshots and collages and the subjects and windows "
                        "of single pictures, whose first hits are then checked pixel for pixel (default); "
                        "--no-regions searches the whole image only")
    p.add_argument("--vote", action=argparse.BooleanOptionalAction, default=True,
                   help="re-rank by the class vote of the first hits, in a gallery with classes (default); "
                        "--no-vote ranks by similarity alone")
    p.add_argument("--detector", default=None, metavar="WEIGHTS",
                   help="YOLO weights for key objects with --regions (default: yolov8x-oiv7.pt if present)")
    p.add_argument("queries", nargs="+", metavar="QUERY")
    common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("dedup", help="groups of copies inside the gallery, each with a suggested keeper (nothing "
                       "is moved or deleted)")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine from which two images are copies (default: the encoder's measured score for --level)")
    p.add_argument("--level", choices=("copy", "subject"), default="copy",
                   help="copy: the same picture (cropped, recompressed, recoloured); subject: the same subject")
    p.add_argument("--method", choices=("keeper", "components"), default="keeper",
                   help="keeper: every member is a copy of its keeper (default); components: single linkage")
    p.add_argument("--neighbours", type=int, default=None,
                   help="neighbours looked at per image (default: DedupConfig.neighbours)")
    p.add_argument("--verify", type=float, default=None, help="pixel correlation of the two thumbnails a pair "
                   "needs as well (default: DedupConfig.verify; 0: the cosine alone)")
    p.add_argument("--edges", type=float, default=None, help="correlation of the two thumbnails' edge maps a pair "
                   "needs too (default: DedupConfig.edges; 0: not checked)")
    p.add_argument("--lone-cosine", type=float, default=None, help="an image left alone looks again at its "
                   "nearest neighbours down to this cosine (default: DedupConfig.lone_cosine; 0: never), and joins "
                   "one's group when their thumbnails line up at --lone-pixels or, without colour (a sketch), their "
                   "edges at --outlines")
    p.add_argument("--lone-pixels", type=float, default=None, help="pixel correlation for that (default: "
                   "DedupConfig.lone_pixels; 0: not by pixels)")
    p.add_argument("--outlines", type=float, default=None, help="edge correlation at the picture's own size for "
                   "that (default: DedupConfig.outlines; 0: not by outlines)")
    p.add_argument("--json", action="store_true", help="one JSON object per group, one per line")
    p.add_argument("--csv", metavar="FILE", help="write one row per member (-: to standard output)")
    p.add_argument("--html", metavar="FILE", help="write a report with thumbnails")
    p.add_argument("--move-to", metavar="DIR", help="move every copy but its group's keeper into DIR (by gallery id) "
                   "and out of the index: a dry run unless --yes; DIR/semcopy-moves.jsonl undoes it")
    p.add_argument("--yes", action="store_true", help="with --move-to: really move")
    p.add_argument("--undo", metavar="LOG", help="move the files of a moves log back and index them again")
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("segment", help="layout (single/screenshot/collage) and photo boxes of images")
    p.add_argument("--json", action="store_true")
    p.add_argument("--draw", metavar="DIR", help="also save each image with its boxes drawn, as DIR/NAME.segment.png")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("encoders", help="list encoders and whether their weights are here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_encoders)

    bench = sub.add_parser("bench", help="benchmarks (quality and speed)")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    for name, func, n, what in (
        ("crops", cmd_bench_crops, 200, "R@1/R@10/MRR of 70-85 %% JPEG crops of gallery images (-n queries)"),
        ("copies", cmd_bench_copies, 100, "line art, sketches, cartoons, pasted subjects... of gallery images: "
                                          "R@1/R@10/mAP@10/uAP per kind and class-level mAP@10 (-n images)"),
        ("regions", cmd_bench_regions, 50, "screenshots, collages, subjects on photos and composites made from the "
                                           "gallery, tuning and held-out splits: R@1 with and without regions, box "
                                           "recall (-n per kind)"),
    ):
        p = bsub.add_parser(name, help=what)
        p.add_argument("images_dir", metavar="IMAGES_DIR", help="the folder the index was built from")
        p.add_argument("--index", required=True, metavar="INDEX_DIR")
        p.add_argument("-n", type=int, default=n, help=f"number of queries (default {n})")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", action="store_true")
        if name in ("regions", "copies"):
            p.add_argument("--split", choices=("tuning", "held-out", "both"), default="both",
                           help="queries of the tuning split, the held-out split or both (default)")
        common(p)
        p.set_defaults(func=func)

    p = bsub.add_parser("dedup", help="groups of copies in a generated gallery with known groups: pairwise "
                        "precision/recall of semcopy dedup, imagededup PHash and the plain backbone, per split")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="a folder of class folders to make the gallery from")
    p.add_argument("--groups", type=int, default=40, help="source images with three copies each (default 40)")
    p.add_argument("--distinct", type=int, default=120, help="images without a copy (default 120)")
    p.add_argument("--split", choices=("tuning", "held-out", "both"), default="both")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also time grouping N synthetic vectors made from --index's")
    p.add_argument("--index", metavar="INDEX_DIR", help="with --synthetic: a real gallery's index")
    p.add_argument("--encoder", default=None, help="encoder to index with (default: the default encoder)")
    p.add_argument("--encoder-path", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_dedup)

    p = bsub.add_parser("calibrate", help="fit the merge of region hits (query.merge: slope and offset per region "
                        "kind) on the tuning split of the regions and copies benchmarks")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="the folder the index was built from")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("-n", type=int, default=50, help="regions-benchmark queries per kind (default 50)")
    p.add_argument("--copies", type=int, default=100, help="images copied in every copies-benchmark kind (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("tuning", "held-out"), default="tuning",
                   help="the split to fit on (default tuning; held-out only to check how much it would move)")
    p.add_argument("--write", action="store_true", help="keep the fitted merge in the index's search settings")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_bench_calibrate)

    p = bsub.add_parser("encoders", help="every registered encoder on one gallery: crops R@1, line art / pencil / "
                        "pasted-on-photo R@1, class mAP@10 (random small checkpoints where weights are missing, marked)")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="a folder of class folders (indexed once per encoder)")
    p.add_argument("-n", type=int, default=50, help="crop queries and copied images per encoder (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_encoders)

    p = bsub.add_parser("speed", help="ingestion (optimised vs naive), warm query latency at 21k, 1M-vector "
                        "search recall / latency / size; one JSON object with --json")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="real images to ingest and to draw queries from")
    p.add_argument("--ingest", type=int, default=200, help="images ingested both ways (default 200)")
    p.add_argument("--gallery", type=int, default=21_000, help="gallery vectors for query latency (default 21000)")
    p.add_argument("--queries", type=int, default=50, help="timed single-photo queries (default 50)")
    p.add_argument("--million", type=int, default=1_000_000,
                   help="synthetic vectors searched (default 1000000): IVF-SQ8 in memory up to 4 GB of 8-bit "
                        "vectors (about 3.3M), past it PCA + IVF-PQ re-ranked from a memory-mapped file")
    p.add_argument("--synthetic", choices=["noise", "spectrum"], default="noise",
                   help="synthetic vectors: real ones plus isotropic noise (default), or noise shaped like "
                        "the real vectors' covariance")
    p.add_argument("--compressed", action="store_true",
                   help="the compressed index whatever the number of vectors (to compare it with IVF-SQ8)")
    p.add_argument("--nlist", type=int, default=2048, help="IVF lists of that index (default 2048)")
    p.add_argument("--quick", action="store_true", help="a tiny run that only checks everything works (CI)")
    p.add_argument("--backend", choices=["faiss", "milvus"], default="faiss",
                   help="index backend for ingestion, queries and the --million vectors")
    p.add_argument("--encoder", default=None, help="the encoder measured (default: the default encoder)")
    p.add_argument("--encoder-path", default=None, help="its weights, e.g. a CLIP save_pretrained folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_speed)

    p = sub.add_parser("eval", help="R@1/R@10/mAP@10/MRR/uAP of an index on your own query list (JSONL)")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--queries", required=True, metavar="Q.jsonl",
                   help='one {"query": path, "relevant": [gallery ids], "kind": optional} per line')
    p.add_argument("--regions", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("submit", help="hackathon CSV: image, recs (the top-10 gallery file names) per query; "
                       "where file names repeat, paths below the queries / gallery folder instead")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--queries", required=True, metavar="DIR", help="folder of query images (searched recursively)")
    p.add_argument("--out", required=True, help="CSV to write")
    common(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("train", help="train a projection head (or a fusion encoder's layers) for semantic copies "
                       "on a folder of class folders")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="images in class folders (the parent folder is the class)")
    p.add_argument("--out", required=True, help="head checkpoint to write (.pt)")
    p.add_argument("--encoder", default="effnet-lite0", help="the frozen backbone (default effnet-lite0)")
    p.add_argument("--encoder-path", default=None, help="the backbone's weights, e.g. a CLIP save_pretrained "
                   "folder; the head loads as --encoder semcopy-head --encoder-path HEAD.pt")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--triplet-weight", type=float, default=0.5, help="CombinedLoss weight of the triplet term; "
                   "InfoNCE gets the rest (default 0.5)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of classes held out (default 0.25)")
    p.add_argument("--cache", default=None, help="reuse (or write) the embedded views here (.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", help="serve the search dashboard (Voila) over an index")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                   "on any other address the page asks for a token)")
    p.add_argument("--token", default=None, help="the token to ask for (default $SEMCOPY_TOKEN, else a random one "
                   "beyond 127.0.0.1, printed in the URL)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("trust", help="allow indexes to load these weights files with a loader that can run code "
                       "(ultralytics .pt/.yaml); recorded with their sha256, so a changed file is refused again")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_trust)

    p = sub.add_parser("api", help="serve search, images, index changes and duplicates over HTTP (docs at /docs)")
    p.add_argument("--index", required=True, metavar="INDEX_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; beyond it every request "
                   "needs the token)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=None, help="the bearer token (default $SEMCOPY_TOKEN, else a random one, "
                   "printed); writes always need it")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("demo", help="build the built-in sample gallery (once) and serve the dashboard on it")
    p.add_argument("--dir", default=".cache/demo", help="where the sample gallery and its index go")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--host", default="127.0.0.1", help="as for serve")
    p.add_argument("--token", default=None, help="as for serve")
    p.add_argument("--build-only", action="store_true", help="build the gallery and index, do not serve")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="semcopy: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _expected_errors() as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"semcopy: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semcopy: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing stdout at exit does not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
