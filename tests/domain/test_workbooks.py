"""The shared workbook reader and writer: what it writes reads back, and what is not a workbook
(or lacks a column) is a clear problem, never a crash."""

import io
import zipfile
from datetime import UTC, datetime

import openpyxl
import pytest

from domain import workbooks
from domain.workbooks import ImportProblem, NotAWorkbook, Sheet, SheetSpec

SPECS = [SheetSpec("People", ["name", "age"]), SheetSpec("Pets", ["name", "owner"])]


def test_what_is_written_reads_back_by_header_with_row_numbers():
    data = workbooks.write_workbook(
        [
            Sheet(
                "People", ["name", "age"], [["mira", 31], ["=HYPERLINK(1)", None], [" noor ", 7]]
            ),
            Sheet("Pets", ["name", "owner"], []),
        ]
    )
    opened = openpyxl.load_workbook(io.BytesIO(data))
    assert opened.sheetnames == ["People", "Pets"]
    assert opened["People"]["A3"].data_type == "s"  # text that looks like a formula stays text
    read = workbooks.read_workbook(data, SPECS)
    assert read.problems == []
    assert read.sheets["People"].rows == [
        (2, {"name": "mira", "age": 31}),
        (3, {"name": "=HYPERLINK(1)", "age": None}),
        (4, {"name": "noor", "age": 7}),
    ]
    assert read.sheets["Pets"].rows == []


def test_datetimes_are_written_in_utc():
    at = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    data = workbooks.write_workbook([Sheet("People", ["name", "age"], [["mira", at]])])
    [(_, row)] = workbooks.read_workbook(data, SPECS).sheets["People"].rows
    assert row["age"] == datetime(2026, 12, 1, 10, 30)


def workbook_with(header: list, rows: list, title: str = "People") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_header_problems_name_the_sheet_row_and_column():
    data = workbook_with([" Name ", "colour", "name"], [["mira", "red"]])
    read = workbooks.read_workbook(data, SPECS)
    assert read.problems == [
        ImportProblem("People", 1, "colour", "unknown column"),
        ImportProblem("People", 1, "name", "the column appears twice"),
        ImportProblem("People", 1, "age", "the header lacks this column"),
    ]
    assert read.sheets["People"].rows == []


def test_an_unknown_sheet_is_a_problem_and_blank_rows_are_skipped():
    data = workbook_with(["name", "age"], [["mira", 3], [None, None], ["noor", 4]], "Peeple")
    read = workbooks.read_workbook(data, SPECS)
    assert read.problems == [
        ImportProblem("Peeple", 1, None, "unknown sheet; expected People, Pets")
    ]
    data = workbook_with(["name", "age"], [["mira", 3], [None, "  "], ["noor", 4]])
    assert [n for n, _ in workbooks.read_workbook(data, SPECS).sheets["People"].rows] == [2, 4]


def zipped(**entries: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,age\nmira,3\n", "not an .xlsx workbook"),
        (b"", "not an .xlsx workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "save it as .xlsx"),
        (zipped(**{"word/document.xml": b"<w/>"}), "ZIP archive but not an .xlsx"),
        (
            zipped(**{"[Content_Types].xml": b"<nope", "xl/workbook.xml": b"<nope"}),
            "could not be read as an .xlsx workbook",
        ),
    ],
)
def test_what_is_not_a_workbook_is_refused_clearly(data, message):
    with pytest.raises(NotAWorkbook) as refused:
        workbooks.read_workbook(data, SPECS)
    assert message in refused.value.message
    assert (refused.value.code, refused.value.extensions) == ("BAD_USER_INPUT", {"field": "file"})


def test_a_truncated_workbook_is_refused():
    data = workbook_with(["name", "age"], [["mira", 3]])
    with pytest.raises(NotAWorkbook):
        workbooks.read_workbook(data[: len(data) // 2], SPECS)


def test_a_workbook_that_unpacks_too_large_is_refused(monkeypatch):
    monkeypatch.setattr(workbooks, "MAX_UNPACKED_BYTES", 1024 * 1024)
    data = zipped(
        **{
            "[Content_Types].xml": b"<x/>",
            "xl/workbook.xml": b"<x/>",
            "xl/worksheets/sheet1.xml": b" " * (2 * 1024 * 1024),
        }
    )
    assert len(data) < 64 * 1024
    with pytest.raises(NotAWorkbook) as refused:
        workbooks.read_workbook(data, SPECS)
    assert "unpacks to more than 1 MiB" in refused.value.message
