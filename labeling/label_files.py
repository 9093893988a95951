"""Reading a labels file for ``shiftwatch labeling import``: CSV with a header, or JSON Lines, rows named by line.

Columns (CSV) or keys (JSONL): one of ``prediction_id``, ``request_id``, ``input_ref``; ``label``
(class name or index); optionally ``annotator``. The columns ``labeling export`` adds for the person
(``VIEW_COLUMNS``) are ignored; anything else is refused, so a misspelt column never turns into rows
silently missing their key. A row whose label is empty is not labeled yet: it is left out and
counted, so a half-labeled export can be sent back as it is.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from shiftwatch.errors import Invalid
from shiftwatch.labeling.label_import import FIELDS, InvalidRows, LabelRow, RowProblem

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
VIEW_COLUMNS = ("image_url", "reason", "route", "predicted")


@dataclass(frozen=True, slots=True)
class LabelFile:
    rows: list[LabelRow]  # the rows that carry a label
    unlabeled: int  # rows with an empty label: not labeled yet, left out


def read_label_file(path: Path) -> LabelFile:
    """The file's labeled rows, each named ``line N``; a malformed file raises InvalidRows listing every bad line."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise Invalid("FILE", f"{path.name}: the name must end in {', '.join(FORMATS)} (CSV with a header, or JSON Lines)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # utf-8-sig: spreadsheets write a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid("FILE", f"{path}: cannot be read as UTF-8 text ({exc})") from None
    rows, problems = _csv(text) if kind == "csv" else _jsonl(text)
    if problems:
        raise InvalidRows(problems, max(len(rows), 1))
    labeled = [row for row in rows if row.label is not None]
    if not labeled:
        raise Invalid("FILE", f"{path.name} holds no labels ({len(rows)} rows, every label empty)")
    return LabelFile(labeled, len(rows) - len(labeled))


def _unknown(where: str, names: list[str]) -> list[RowProblem]:
    return [RowProblem(where, name, f"is not one of {', '.join(FIELDS)}") for name in names
            if name not in FIELDS and name not in VIEW_COLUMNS]


def _csv(text: str) -> tuple[list[LabelRow], list[RowProblem]]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    problems = _unknown("line 1", header)
    rows = []
    for record in reader:
        where = f"line {reader.line_num}"
        if None in record:  # more cells than the header names
            problems.append(RowProblem(where, "row", f"has {len(header) + len(record[None])} cells, the header {len(header)}"))
            continue
        rows.append(LabelRow.of(where, record))
    return rows, problems


def _jsonl(text: str) -> tuple[list[LabelRow], list[RowProblem]]:
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(RowProblem(where, "json", f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append(RowProblem(where, "json", f"must be an object, not {type(record).__name__}"))
            continue
        found = _unknown(where, list(record))
        problems.extend(found)
        if not found:
            rows.append(LabelRow.of(where, record))
    return rows, problems
