"""`carecast contacts import FILE.csv`: upsert contacts, report bad rows, keep the good ones.

Columns: `id` (required), `email`, `phone`, `timezone`, `locale`, `lifecycle_stage`,
`care_agent`, `preferences` (a JSON object, as in `PUT /v1/contacts/{id}`), and
`attr.<name>` for attributes, typed in the header as `attr.<name>:<type>`
(carecast/contacts/attribute_types.py; text without a type; an empty cell sets
nothing). Unknown columns and types are refused before any row is read, so a typo
in a header cannot silently drop a column or keep `true` as text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from carecast.contacts.attribute_types import AttributeType, attribute_type
from carecast.contacts.kept import AddressKey
from carecast.contacts.schema import ContactInput, first_error, personal_id
from carecast.contacts.writer import WriteSummary, write_contacts
from carecast.intake.record import record_stage_moves
from carecast.store.models import utcnow

KNOWN_COLUMNS = {"id", "email", "phone", "timezone", "locale", "lifecycle_stage", "care_agent", "preferences"}
ATTRIBUTE_PREFIX = "attr."
BATCH_SIZE = 1000


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, no header, unknown columns)."""


@dataclass(frozen=True)
class RowError:
    line: int
    contact_id: str | None
    reason: str

    def __str__(self) -> str:
        """One line fit for a terminal: control characters from the file (escape sequences) shown escaped."""
        who = f" ({self.contact_id})" if self.contact_id else ""
        return _printable(f"line {self.line}{who}: {self.reason}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass
class ImportReport:
    summary: WriteSummary = field(default_factory=WriteSummary)
    rejected: list[RowError] = field(default_factory=list)
    rows: int = 0
    signals: list[int] = field(default_factory=list)  # outbox rows announcing the stage moves


def check_header(header: list[str] | None) -> list[str]:
    if not header:
        raise ImportFileError("the file is empty; the first line must name the columns (at least 'id')")
    unknown = [c for c in header if c not in KNOWN_COLUMNS and not c.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise ImportFileError(
            f"unknown column {unknown[0]!r}; use {', '.join(sorted(KNOWN_COLUMNS))} or attr.<name>[:<type>] for "
            "attributes"
        )
    if "id" not in header:
        raise ImportFileError("there is no 'id' column; every row needs the contact's id")
    names = [_attribute_column(c)[0] if c.startswith(ATTRIBUTE_PREFIX) else c for c in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ImportFileError(f"column {duplicated[0]!r} appears twice")
    return header


def _attribute_column(column: str) -> tuple[str, AttributeType]:
    """`attr.vip:bool` → ("vip", its type); an unknown type is an ImportFileError."""
    name, _, type_name = column.removeprefix(ATTRIBUTE_PREFIX).partition(":")
    try:
        return name.strip(), attribute_type(type_name.strip() or "text")
    except ValueError as exc:
        raise ImportFileError(f"column {column!r}: {exc}") from None


def row_to_input(row: dict[str, str], default_region: str | None) -> ContactInput:
    """One CSV row as a validated ContactInput; raises ValueError with `column: reason`."""
    values: dict = {}
    attributes: dict[str, object] = {}
    for column, raw in row.items():
        cell = (raw or "").strip()
        if not cell:
            continue
        if column.startswith(ATTRIBUTE_PREFIX):
            name, typed = _attribute_column(column)
            try:
                attributes[name] = typed.read(cell)
            except ValueError as exc:
                raise ValueError(f"{column}: {exc}") from None
        elif column == "preferences":
            try:
                values["preferences"] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise ValueError(f"preferences: not valid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise ValueError("preferences: nested too deeply; a preferences object is two levels deep") from None
        else:
            values[column] = cell
    if attributes:
        values["attributes"] = attributes
    try:
        personal_id(values.get("id"))
    except ValueError as exc:
        raise ValueError(f"id: {exc}") from None
    try:
        return ContactInput.model_validate(values, context={"default_region": default_region})
    except ValidationError as exc:
        raise ValueError(first_error(exc)) from None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; line numbers count the header as line 1."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle, restkey="\0extra")
        try:
            check_header(reader.fieldnames)
            for row in reader:
                if "\0extra" in row:
                    row.pop("\0extra")
                    yield reader.line_num, {"\0error": "the row has more cells than the header has columns"}
                    continue
                yield reader.line_num, row
        except UnicodeDecodeError:
            raise ImportFileError(f"{path} is not UTF-8 text; save it as CSV UTF-8") from None
        except csv.Error as exc:
            raise ImportFileError(f"{path}: line {reader.line_num}: {exc}") from None


def import_contacts(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    address_key: AddressKey,
    default_region: str | None = None,
    progress: Callable[[int], None] = lambda rows_read: None,
) -> ImportReport:
    """Imports every valid row in batches; a bad row is reported and never blocks the others.

    Each batch commits on its own, so an interrupted import keeps what it wrote and
    a rerun completes it (re-importing changes nothing that is already right).
    """
    report = ImportReport()
    seen: dict[str, int] = {}
    batch: list[ContactInput] = []
    occasion = f"import/{path.name}/{utcnow():%Y%m%dT%H%M%S%fZ}"

    def flush() -> None:
        if batch:
            with sessions.begin() as session:
                written = write_contacts(session, batch, source=f"import:{path.name}", address_key=address_key)
                # Stage journeys start and end with the batch that moved the stages, not at the next recompute.
                report.signals += record_stage_moves(session, written.stage_moves, occasion)
                report.summary.add(written)
            batch.clear()
        progress(report.rows)

    for line, row in read_rows(path):
        report.rows += 1
        contact_id = (row.get("id") or "").strip() or None
        if "\0error" in row:
            report.rejected.append(RowError(line, None, row["\0error"]))
            continue
        try:
            item = row_to_input(row, default_region)
        except ValueError as exc:
            report.rejected.append(RowError(line, contact_id, str(exc)))
            continue
        if item.id in seen:
            report.rejected.append(RowError(line, item.id, f"duplicate id; first seen on line {seen[item.id]}"))
            continue
        seen[item.id] = line
        batch.append(item)
        if len(batch) >= BATCH_SIZE:
            flush()
    flush()
    return report
