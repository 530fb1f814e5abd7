"""Taking results away: the hits of a search as CSV rows and as a ZIP of images plus that CSV."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Sequence

from semcopy_lib.app.results import QueryResult, verdict
from semcopy_lib.data import is_image_path

#: Columns of the hits CSV, in order.
CSV_COLUMNS = ("query", "rank", "id", "score", "verdict")


def hit_rows(results: Sequence[QueryResult], copy: float, subject: float) -> list[dict[str, object]]:
    """One row per hit of every query that has hits: ``CSV_COLUMNS``, score rounded to 6 decimals."""
    return [
        {"query": r.query, "rank": rank, "id": h.gallery_id, "score": round(h.score, 6),
         "verdict": verdict(h.score, copy, subject)}
        for r in results if not r.error for rank, h in enumerate(r.hits, 1)
    ]


def hits_csv(results: Sequence[QueryResult], copy: float, subject: float) -> str:
    """The hits as CSV text with a header line (``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(hit_rows(results, copy, subject))
    return out.getvalue()


def hits_zip(results: Sequence[QueryResult], copy: float, subject: float) -> bytes:
    """A ZIP: ``hits.csv`` and, per query, its hits' image files as ``<query>/<rank>_<id>``.

    Names are made safe (no folders from ids or query names); a hit whose file is gone, or is not an image
    file (an index's records could name any path), is in the CSV only.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hits.csv", hits_csv(results, copy, subject))
        for q, result in enumerate(results, 1):
            folder = f"{q:02d}_{_safe(Path(result.query).name)}"
            for rank, hit in enumerate(result.hits, 1):
                source = Path(hit.source)
                if source.is_file() and is_image_path(source):
                    zf.write(source, f"{folder}/{rank:02d}_{_safe(hit.gallery_id)}")
    return buf.getvalue()


def _safe(name: str) -> str:
    """A file name with only letters, digits, ``.``, ``-`` and ``_`` (folders flattened with ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
