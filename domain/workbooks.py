"""Excel workbooks (.xlsx) for every area's exports and imports, through openpyxl.

Writing streams rows into a write-only workbook, so memory stays flat however many rows.
Reading checks the file really is an .xlsx workbook (a ZIP archive holding one, not too large
unpacked) and that each sheet has the expected header; it returns each sheet's rows as dicts
keyed by header, with their row numbers (the header is row 1), and every problem found as an
`ImportProblem`. A file that is not a workbook at all is `NotAWorkbook` (BAD_USER_INPUT).
Both are synchronous and CPU-bound: callers run them in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from domain.errors import BadUserInput

MAX_UNPACKED_BYTES = 512 * 1024**2
"""A workbook that unpacks to more than this is refused (a ZIP bomb, or far too big)."""
REQUIRED_PARTS = ("[Content_Types].xml", "xl/workbook.xml")


class NotAWorkbook(BadUserInput):
    def __init__(self, message: str) -> None:
        super().__init__(message, field="file")


@dataclass(frozen=True)
class ImportProblem:
    sheet: str
    row: int
    """1-based, the header being row 1."""
    column: str | None
    message: str


@dataclass(frozen=True)
class Sheet:
    """A sheet to write: its header and rows (values in header order)."""

    name: str
    header: Sequence[str]
    rows: Iterable[Sequence[Any]]


@dataclass(frozen=True)
class SheetSpec:
    """A sheet an import understands, with the columns its header must have."""

    name: str
    columns: Sequence[str]


@dataclass
class SheetRows:
    name: str
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(row number, {column: value}); blank rows are left out."""


@dataclass
class ReadWorkbook:
    sheets: dict[str, SheetRows]
    problems: list[ImportProblem]


# -- writing ---------------------------------------------------------------------------------


def _cell(sheet, value: Any) -> Any:
    """What openpyxl should store: a text that looks like a formula stays text, and a
    timezone-aware datetime is written in UTC (Excel has no time zones)."""
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"
        return cell
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def write_workbook(sheets: Iterable[Sheet]) -> bytes:
    """An .xlsx file with one sheet per `Sheet`, header row in bold and frozen."""
    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for spec in sheets:
        sheet = book.create_sheet(spec.name)
        sheet.freeze_panes = "A2"
        header = []
        for name in spec.header:
            cell = WriteOnlyCell(sheet, name)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in spec.rows:
            sheet.append([_cell(sheet, value) for value in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- reading ---------------------------------------------------------------------------------


def check_archive(data: bytes) -> None:
    """Refuse at once what is plainly not an .xlsx workbook (cheap: reads the ZIP's index)."""
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise NotAWorkbook(
            "the file is an old Excel (.xls) or other OLE document: save it as .xlsx"
        )
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise NotAWorkbook("the file is not an .xlsx workbook")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as error:
        raise NotAWorkbook(f"the file is not a readable .xlsx workbook ({error})") from None
    names = {entry.filename for entry in entries}
    if not all(part in names for part in REQUIRED_PARTS):
        raise NotAWorkbook("the file is a ZIP archive but not an .xlsx workbook")
    if sum(entry.file_size for entry in entries) > MAX_UNPACKED_BYTES:
        raise NotAWorkbook(f"the workbook unpacks to more than {MAX_UNPACKED_BYTES // 1024**2} MiB")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _header_key(text: Any) -> str:
    return str(text).strip().lower() if text is not None else ""


def read_workbook(data: bytes, specs: Sequence[SheetSpec]) -> ReadWorkbook:
    """Every known sheet's rows, and the problems: an unknown sheet, a header without one of
    its columns (or with a column nobody expects, or twice the same). Values are as the
    workbook holds them (text stripped, empty text as None); sheets that are absent have no
    rows. Raises NotAWorkbook when the file is not a readable .xlsx workbook."""
    check_archive(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises whatever its XML or ZIP layer raised
        raise NotAWorkbook(
            f"the file could not be read as an .xlsx workbook ({type(error).__name__})"
        ) from None
    by_name = {spec.name.lower(): spec for spec in specs}
    expected = ", ".join(spec.name for spec in specs)
    result = ReadWorkbook(sheets={}, problems=[])
    try:
        for sheet in book.worksheets:
            spec = by_name.get(sheet.title.strip().lower())
            if spec is None:
                result.problems.append(
                    ImportProblem(sheet.title, 1, None, f"unknown sheet; expected {expected}")
                )
                continue
            if spec.name in result.sheets:
                result.problems.append(ImportProblem(sheet.title, 1, None, "a second such sheet"))
                continue
            result.sheets[spec.name] = _read_sheet(sheet, spec, result.problems)
    except Exception as error:
        raise NotAWorkbook(
            f"the file could not be read as an .xlsx workbook ({type(error).__name__})"
        ) from None
    finally:
        book.close()
    return result


def _read_sheet(sheet, spec: SheetSpec, problems: list[ImportProblem]) -> SheetRows:
    rows = sheet.iter_rows(values_only=True)
    found = SheetRows(spec.name)
    header = next(rows, None) or ()
    wanted = {column.lower(): column for column in spec.columns}
    positions: dict[str, int] = {}
    for index, text in enumerate(header):
        key = _header_key(text)
        if not key:
            continue
        column = wanted.get(key)
        if column is None:
            problems.append(ImportProblem(spec.name, 1, str(text).strip(), "unknown column"))
        elif column in positions:
            problems.append(ImportProblem(spec.name, 1, column, "the column appears twice"))
        else:
            positions[column] = index
    missing = [column for column in spec.columns if column not in positions]
    for column in missing:
        problems.append(ImportProblem(spec.name, 1, column, "the header lacks this column"))
    if missing:
        return found
    for number, values in enumerate(rows, start=2):
        row = {
            column: _clean(values[index]) if index < len(values) else None
            for column, index in positions.items()
        }
        if any(value is not None for value in row.values()):
            found.rows.append((number, row))
    return found
