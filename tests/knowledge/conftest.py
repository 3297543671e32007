"""Builders for the test documents, written with the writer side of each format's library.

PDFs come from ``make_pdf``, a small hand-made writer: Latin lines in Helvetica, Chinese
lines in Adobe's STSong-Light with the ``UniGB-UTF16-H`` encoding (UTF-16 codes, which
pypdf maps back to text without an embedded font or a ToUnicode map). No reportlab, and
no LibreOffice.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import docx
import openpyxl  # type: ignore[import-untyped, unused-ignore]
import pytest
from pptx import Presentation
from pptx.util import Inches


def _pdf_string(text: str) -> bytes:
    if text.isascii():
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return f"({escaped})".encode("latin-1")
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def make_pdf(
    pages: Sequence[Sequence[str]], *, title: str | None = None, author: str | None = None
) -> bytes:
    """A PDF with one page per item of ``pages``, each line of text on its own line."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")
    tree = add(b"")
    latin = add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    descriptor = add(
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [0 -200 1000 900]"
        b" /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>"
    )
    cid = add(
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo"
        b" << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor %d 0 R >>"
        % descriptor
    )
    chinese = add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UTF16-H"
        b" /DescendantFonts [%d 0 R] >>" % cid
    )
    kids: list[int] = []
    for lines in pages:
        commands = []
        for number, line in enumerate(lines):
            font = "F1" if line.isascii() else "F2"
            y = 760 - 18 * number
            commands.append(b"BT /%s 12 Tf 40 %d Td " % (font.encode(), y))
            commands.append(b"%s Tj ET\n" % (_pdf_string(line) if line.isascii() else _utf16(line)))
        stream = b"".join(commands)
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font"
                b" << /F1 %d 0 R /F2 %d 0 R >> >> /Contents %d 0 R >>"
                % (tree, latin, chinese, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    info_fields = b""
    if title is not None:
        info_fields += b" /Title " + _pdf_string(title)
    if author is not None:
        info_fields += b" /Author " + _pdf_string(author)
    info = add(b"<<%s >>" % info_fields)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\n" % (
        len(objects) + 1,
        catalog,
        info,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _utf16(text: str) -> bytes:
    """A string in the UniGB-UTF16-H encoding: its UTF-16BE code units, no byte-order mark."""
    return b"<" + text.encode("utf-16-be").hex().upper().encode() + b">"


def make_docx() -> bytes:
    """A handbook: Title, H1/H2 headings, a list, a table with a merged cell, Chinese."""
    document = docx.Document()
    document.core_properties.author = "HR team"
    document.add_heading("Employee Handbook", level=0)
    document.add_paragraph("Welcome to the company.")
    document.add_heading("Leave", level=1)
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Sick leave needs a doctor's note after two days.")
    document.add_paragraph("Tell your manager", style="List Bullet")
    document.add_paragraph("Send the note to HR", style="List Bullet")
    document.add_paragraph("within three days", style="List Bullet 2")
    document.add_heading("Annual leave", level=2)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(
        table.rows, [("Grade", "Days", "Note"), ("A", "10", ""), ("B", "15", "")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    merged = table.cell(1, 1).merge(table.cell(1, 2))
    merged.text = "10 days"
    document.add_heading("请假制度", level=1)
    document.add_paragraph("员工请病假时，应当提供医院证明。年假每年十天。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    """Three slides: English with notes, Chinese with a table, one without a title."""
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    assert first.shapes.title is not None
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text = "Revenue grew 12%.\nTwo new clients."
    first.notes_slide.notes_text_frame.text = "Mention the Shanghai office."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    assert second.shapes.title is not None
    second.shapes.title.text = "季度总结"
    frame = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1))
    for (r, c), value in {(0, 0): "地区", (0, 1): "收入", (1, 0): "上海", (1, 1): "120万"}.items():
        frame.table.cell(r, c).text = value
    third = deck.slides.add_slide(deck.slide_layouts[6])
    box = third.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    box.text_frame.text = "Thank you"
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(rows: int = 3) -> bytes:
    """Two sheets: Chinese staff records with a header, and numbers without one."""
    workbook = openpyxl.Workbook()
    staff = workbook.active
    assert staff is not None
    staff.title = "员工"
    staff.append(["姓名", "部门", "年假天数", "入职日期"])
    names = ["张三", "李四", "王五"]
    for number in range(rows):
        staff.append([names[number % 3], "研发", 10 + number % 5, f"2024-03-{number % 28 + 1:02d}"])
    budget = workbook.create_sheet("Budget")
    budget.append([2024, 1200.5, 3])
    budget.append([2025, 1300.0, None])
    workbook.properties.title = "HR data"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_huge_xlsx(rows: int) -> bytes:
    """A valid .xlsx whose one sheet has ``rows`` rows, written straight as XML (fast).

    Like Excel, it declares the sheet's dimension; without one, openpyxl scans the whole
    sheet when it opens it (bounded by the zip limits, but slow).
    """
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="applicati'
            'on/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" Conten'
            'tType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="appli'
            'cation/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override'
            ' PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats'
            '-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxm'
            'lformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sch'
            'emas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target='
            '"xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlform'
            'ats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/offic'
            'eDocument/2006/relationships"><sheets><sheet name="Log" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxm'
            'lformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sch'
            'emas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="work'
            'sheets/sheet1.xml"/></Relationships>'
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openx'
                b'mlformats.org/spreadsheetml/2006/main"><dimension ref="A1:A%d"/><sheetData>'
                % rows
            )
            batch = 10_000
            for first in range(1, rows + 1, batch):
                sheet.write(
                    b"".join(
                        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (n, n, n)
                        for n in range(first, min(first + batch, rows + 1))
                    )
                )
            sheet.write(b"</sheetData></worksheet>")
    return out.getvalue()


@pytest.fixture(scope="session")
def docx_bytes() -> bytes:
    return make_docx()


@pytest.fixture(scope="session")
def pptx_bytes() -> bytes:
    return make_pptx()


@pytest.fixture(scope="session")
def xlsx_bytes() -> bytes:
    return make_xlsx()
