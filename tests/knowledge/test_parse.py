"""graft.knowledge.parse: every format in English and Chinese, and hostile files refused."""

from __future__ import annotations

import io
import os
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfWriter
from tests.knowledge.conftest import make_docx, make_huge_xlsx, make_pdf, make_xlsx

import graft.knowledge.parse as parse_module
from graft.errors import ConfigError, InvalidRequest, PayloadTooLarge
from graft.knowledge import SUPPORTED, ParsedDocument, Section, parse_bytes, parse_file
from graft.knowledge.parse import DOCX, PDF, PPTX, XLSX

HANDBOOK_PAGES = [
    ["Employee Handbook", "Sick leave needs a doctor's note."],
    ["第二章 年假", "员工每年享有带薪年假十天。未休完的年假可以顺延。"],
    ["Chapter 3 Pay", "Salaries are paid on the 25th."],
]


def by_kind(doc: ParsedDocument, kind: str) -> list[Section]:
    return [s for s in doc.sections if s.kind == kind]


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_pages_english_and_chinese() -> None:
    doc = parse_bytes(make_pdf(HANDBOOK_PAGES, title="Handbook 2024", author="HR"), name="h.pdf")
    assert doc.media_type == PDF
    assert doc.title == "Handbook 2024"
    assert doc.metadata["author"] == "HR"
    assert doc.metadata["pages"] == 3
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert all(s.heading_path == () for s in doc.sections)
    assert "doctor's note" in doc.sections[0].text
    assert "员工每年享有带薪年假十天。" in doc.sections[1].text


def test_pdf_bookmarks_become_heading_paths() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(HANDBOOK_PAGES)))
    chapter = writer.add_outline_item(title="Leave", page_number=0)
    writer.add_outline_item(title="年假", page_number=1, parent=chapter)
    writer.add_outline_item(title="Pay", page_number=2)
    out = io.BytesIO()
    writer.write(out)
    doc = parse_bytes(out.getvalue(), name="h.pdf")
    assert [s.heading_path for s in doc.sections] == [("Leave",), ("Leave", "年假"), ("Pay",)]


def test_pdf_title_falls_back_to_the_file_name() -> None:
    assert parse_bytes(make_pdf(HANDBOOK_PAGES), name="员工手册.pdf").title == "员工手册"


def test_pdf_page_cap_is_recorded() -> None:
    doc = parse_bytes(make_pdf(HANDBOOK_PAGES), name="h.pdf", max_pages=2)
    assert [s.page for s in doc.sections] == [1, 2]
    assert doc.metadata["truncated"] is True
    assert doc.metadata["page_limit"] == 2


def test_pdf_with_a_password_is_refused() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(HANDBOOK_PAGES)))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(InvalidRequest, match=r"'locked\.pdf' is a password-protected PDF"):
        parse_bytes(out.getvalue(), name="locked.pdf")


def test_pdf_with_owner_only_protection_is_read() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(HANDBOOK_PAGES)))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    doc = parse_bytes(out.getvalue(), name="nocopy.pdf")
    assert "员工每年享有带薪年假十天" in doc.text


def test_corrupt_pdf_is_refused() -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n1 0 obj << /Type /Catalog"
    with pytest.raises(InvalidRequest, match=r"'broken\.pdf'"):
        parse_bytes(data, name="broken.pdf")


def test_pdf_without_text_needs_ocr() -> None:
    with pytest.raises(InvalidRequest, match="OCR"):
        parse_bytes(make_pdf([[], []]), name="scan.pdf")


# --- Word --------------------------------------------------------------------------------


def test_docx_headings_lists_tables(docx_bytes: bytes) -> None:
    doc = parse_bytes(docx_bytes, name="handbook.docx")
    assert doc.media_type == DOCX
    assert doc.title == "Employee Handbook"  # the Title paragraph: the properties have none
    assert doc.metadata["author"] == "HR team"
    headings = [s.heading_path for s in by_kind(doc, "heading")]
    assert headings == [
        ("Employee Handbook",),
        ("Employee Handbook", "Leave"),
        ("Employee Handbook", "Leave", "Sick leave"),
        ("Employee Handbook", "Leave", "Annual leave"),
        ("Employee Handbook", "请假制度"),
    ]
    (items,) = by_kind(doc, "list")
    assert items.text == "- Tell your manager\n- Send the note to HR\n  - within three days"
    assert items.heading_path == ("Employee Handbook", "Leave", "Sick leave")
    (table,) = by_kind(doc, "table")
    # The merged cell counts once; the empty trailing cell is dropped.
    assert table.text == "Grade | Days | Note\nA | 10 days\nB | 15"
    assert table.heading_path[-1] == "Annual leave"
    chinese = doc.sections[-1]
    assert chinese.text == "员工请病假时，应当提供医院证明。年假每年十天。"
    assert chinese.heading_path == ("Employee Handbook", "请假制度")
    assert all(s.page is None for s in doc.sections)


# --- PowerPoint --------------------------------------------------------------------------


def test_pptx_slides_titles_notes_tables(pptx_bytes: bytes) -> None:
    doc = parse_bytes(pptx_bytes, name="q3.pptx")
    assert doc.media_type == PPTX
    assert doc.title == "Quarterly results"
    assert doc.metadata["slides"] == 3
    assert [(s.text, s.page) for s in by_kind(doc, "heading")] == [
        ("Quarterly results", 1),
        ("季度总结", 2),
        ("Slide 3", 3),
    ]
    first = [s for s in doc.sections if s.page == 1]
    assert [s.kind for s in first] == ["heading", "text", "notes"]
    assert first[1].text == "Revenue grew 12%.\nTwo new clients."
    assert first[2].text == "Mention the Shanghai office."
    assert all(s.heading_path == ("Quarterly results",) for s in first)
    (table,) = by_kind(doc, "table")
    assert (table.text, table.page, table.heading_path) == (
        "地区 | 收入\n上海 | 120万",
        2,
        ("季度总结",),
    )
    assert doc.sections[-1] == Section("Thank you", ("Slide 3",), page=3)


# --- Excel and CSV -----------------------------------------------------------------------


def test_xlsx_sheets_as_headings_rows_as_records(xlsx_bytes: bytes) -> None:
    doc = parse_bytes(xlsx_bytes, name="hr.xlsx")
    assert doc.media_type == XLSX
    assert doc.title == "HR data"
    assert [s.text for s in by_kind(doc, "heading")] == ["员工", "Budget"]
    staff, budget = by_kind(doc, "table")
    assert staff.heading_path == ("员工",)
    assert (
        staff.text.splitlines()[0] == "姓名: 张三; 部门: 研发; 年假天数: 10; 入职日期: 2024-03-01"
    )
    # A first row of numbers is data: the columns are named by letter.
    assert budget.text == "A: 2024; B: 1200.5; C: 3\nA: 2025; B: 1300"
    assert "truncated" not in doc.metadata


def test_xlsx_rows_are_grouped_into_blocks() -> None:
    doc = parse_bytes(make_xlsx(rows=200), name="hr.xlsx")
    blocks = [s for s in by_kind(doc, "table") if s.heading_path == ("员工",)]
    assert len(blocks) > 1
    assert all(len(b.text) <= 1000 for b in blocks)
    assert sum(len(b.text.splitlines()) for b in blocks) == 200
    assert all(line.startswith("姓名: ") for b in blocks for line in b.text.splitlines())


def test_xlsx_row_cap_is_recorded() -> None:
    doc = parse_bytes(make_xlsx(rows=50), name="hr.xlsx", max_rows=10)
    assert doc.metadata["truncated"] is True
    assert doc.metadata["row_limit"] == 10
    lines = [line for s in by_kind(doc, "table") for line in s.text.splitlines()]
    assert len(lines) == 9  # ten rows read, the first being the header


def test_xlsx_with_a_million_rows_is_read_up_to_the_cap() -> None:
    data = make_huge_xlsx(1_000_000)
    doc = parse_bytes(data, name="log.xlsx", max_rows=5_000)
    assert doc.metadata["truncated"] is True
    assert doc.metadata["rows"] == 5_000
    lines = [line for s in by_kind(doc, "table") for line in s.text.splitlines()]
    assert lines[0] == "A: 1" and lines[-1] == "A: 5000"


def test_csv_in_gb18030_with_semicolons() -> None:
    text = '姓名;部门;天数\n张三;研发;10\n李四;"市场, 销售";5\n'
    doc = parse_bytes(text.encode("gb18030"), name="staff.csv")
    assert doc.media_type == "text/csv"
    assert doc.metadata["encoding"] == "gb18030"
    (table,) = doc.sections
    assert table.kind == "table"
    assert table.text == "姓名: 张三; 部门: 研发; 天数: 10\n姓名: 李四; 部门: 市场, 销售; 天数: 5"


def test_csv_row_cap() -> None:
    text = "id,name\n" + "".join(f"{n},row {n}\n" for n in range(100))
    doc = parse_bytes(text.encode(), name="rows.csv", max_rows=11)
    assert doc.metadata["truncated"] is True
    assert doc.sections[0].text.splitlines()[-1] == "id: 9; name: row 9"


# --- HTML, Markdown, text ----------------------------------------------------------------

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="gbk">
<title>员工手册</title><meta name="author" content="人事部">
<style>p { color: red }</style><script>var secret = "tracking";</script></head>
<body><nav><a href="/">首页</a></nav><main>
<script>trackPage("body-script");</script><style>.banner { display: block }</style>
<h1>员工手册</h1><p>欢迎加入
公司。</p>
<h2>请假</h2><h3>病假</h3><p>病假需要医院证明。<br>三天内提交。</p>
<ul><li>告知主管</li><li>提交证明<ul><li>三天内</li></ul></li></ul>
<div hidden>隐藏内容</div><p style="display: none">也是隐藏</p>
<table><tr><th>级别</th><th>天数</th></tr><tr><td>A</td><td>10</td></tr></table>
<h2>Pay</h2><p>Paid <b>monthly</b>,
on the 25th.</p><pre>rate  = 1.5
  bonus</pre></main><footer>版权所有</footer></body></html>"""


def test_html_in_gbk_keeps_structure_and_drops_chrome() -> None:
    doc = parse_bytes(PAGE.encode("gbk"), name="handbook.html")
    assert doc.media_type == "text/html"
    assert doc.title == "员工手册"
    assert doc.metadata["author"] == "人事部"
    assert doc.metadata["language"] == "zh-CN"
    text = doc.text
    for dropped in ("tracking", "color: red", "body-script", "banner", "首页", "隐藏", "版权所有"):
        assert dropped not in text
    assert doc.sections[1] == Section("欢迎加入公司。", ("员工手册",))  # no space in the wrap
    assert Section("病假需要医院证明。\n三天内提交。", ("员工手册", "请假", "病假")) in doc.sections
    (items,) = by_kind(doc, "list")
    assert items.text == "- 告知主管\n- 提交证明\n  - 三天内"
    (table,) = by_kind(doc, "table")
    assert table.text == "级别 | 天数\nA | 10"
    assert Section("Paid monthly, on the 25th.", ("员工手册", "Pay")) in doc.sections
    (code,) = by_kind(doc, "code")
    assert code.text == "rate  = 1.5\n  bonus"


def test_html_charset_from_the_media_type() -> None:
    page = "<p>人事制度说明</p>".encode("gb18030")
    doc = parse_bytes(page, name="page", media_type="text/html; charset=GB2312")
    assert doc.sections[0].text == "人事制度说明"


def test_html_layout_table_is_read_as_blocks() -> None:
    page = "<table><tr><td><h1>Policies</h1><p>Read them.</p></td></tr></table>"
    doc = parse_bytes(page.encode(), name="old.htm")
    assert doc.sections == [
        Section("Policies", ("Policies",), kind="heading"),
        Section("Read them.", ("Policies",)),
    ]


GUIDE = """---
title: Setup guide
author: Ann
date: 2024-05-01
---
Intro paragraph
with a **soft** break and a [link](https://example.com).

# 安装指南

第一段。
第二行中文。

## Steps
- one
- two
  - nested

1. first
2. second

| key | value |
|-----|-------|
| 端口 | 8080 |

```python
print("hi")
```

Notes
-----
Setext heading above.
"""


def test_markdown_structure() -> None:
    doc = parse_bytes(GUIDE.encode(), name="guide.md")
    assert doc.media_type == "text/markdown"
    assert doc.title == "Setup guide"
    assert doc.metadata["author"] == "Ann"
    assert doc.modified == datetime(2024, 5, 1, tzinfo=UTC)
    assert doc.sections[0] == Section("Intro paragraph with a soft break and a link.", ())
    assert Section("第一段。第二行中文。", ("安装指南",)) in doc.sections
    lists = by_kind(doc, "list")
    assert [s.text for s in lists] == ["- one\n- two\n  - nested", "1. first\n2. second"]
    assert all(s.heading_path == ("安装指南", "Steps") for s in lists)
    assert by_kind(doc, "table")[0].text == "key | value\n端口 | 8080"
    assert by_kind(doc, "code")[0].text == 'print("hi")'
    assert doc.sections[-1].heading_path == ("安装指南", "Notes")


def test_markdown_title_from_first_h1() -> None:
    doc = parse_bytes("# 年假规定\n\n每年十天。".encode(), name="leave.markdown")
    assert doc.title == "年假规定"


CHINESE = (
    "第一章 总则\n\n本制度适用于公司全体员工。\n员工请病假时，应当提供医院证明。\n\n\n第二章 年假"
)


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [
        ("gb18030", "gb18030"),
        ("gbk", "gb18030"),
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("utf-16-le", "utf-16-le"),
    ],
)
def test_text_encodings(tmp_path: Path, encoding: str, detected: str) -> None:
    path = tmp_path / "制度.txt"
    path.write_bytes(CHINESE.encode(encoding))
    doc = parse_file(path)
    assert doc.metadata["encoding"] == detected
    assert [s.text for s in doc.sections] == [
        "第一章 总则",
        "本制度适用于公司全体员工。\n员工请病假时，应当提供医院证明。",
        "第二章 年假",
    ]
    assert doc.title == "制度"
    assert doc.modified == datetime.fromtimestamp(path.stat().st_mtime, UTC)


def test_short_gbk_text_is_not_mistaken_for_big5() -> None:
    doc = parse_bytes("你好".encode("gbk"), name="hi.txt")
    assert doc.text == "你好"


def test_latin1_text() -> None:
    doc = parse_bytes("Café au lait, naïve résumé.".encode("cp1252"), name="menu.txt")
    assert doc.text == "Café au lait, naïve résumé."


def test_text_is_normalized() -> None:
    doc = parse_bytes(b"caf\x65\xcc\x81 \x07bell\r\nline  \r\n", name="a.text")
    assert doc.text == "café bell\nline"


# --- types and hostile input -------------------------------------------------------------


def test_supported_extensions() -> None:
    assert set(SUPPORTED) == {
        ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".html", ".htm", ".md", ".markdown",
        ".txt", ".text",
    }  # fmt: skip


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(InvalidRequest, match=r"^'empty\.pdf' is empty$"):
        parse_file(tmp_path / "empty.pdf")


def test_whitespace_only_file_has_no_text() -> None:
    with pytest.raises(InvalidRequest, match=r"'blank\.txt' has no text"):
        parse_bytes(b" \n\n \t\n", name="blank.txt")


def test_oversized_upload() -> None:
    with pytest.raises(PayloadTooLarge, match=r"'big\.txt' is 2\.0 KB, over the 1\.0 KB limit"):
        parse_bytes(b"x" * 2048, name="big.txt", max_bytes=1024)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(60 * 1024 * 1024)  # sparse: nothing is written
    with pytest.raises(PayloadTooLarge, match=r"'huge\.txt' is 60\.0 MB, over the 50\.0 MB"):
        parse_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="cannot be read"):
        parse_file(tmp_path / "nope.pdf")


def test_wrong_extension_names_both_types(docx_bytes: bytes) -> None:
    with pytest.raises(
        InvalidRequest,
        match=r"'report\.pdf' should be a PDF, but its content is a Word document \(\.docx\)",
    ):
        parse_bytes(docx_bytes, name="report.pdf")
    with pytest.raises(
        InvalidRequest, match=r"'notes\.txt' should be plain text, but its content is a PDF"
    ):
        parse_bytes(make_pdf(HANDBOOK_PAGES), name="notes.txt")
    with pytest.raises(InvalidRequest, match=r"should be a Word document.*PNG image"):
        parse_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, name="photo.docx")
    with pytest.raises(InvalidRequest, match=r"does not start with the %PDF- signature"):
        parse_bytes(b"just text", name="fake.pdf")


def test_old_office_format_is_explained() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
    with pytest.raises(InvalidRequest, match=r"old-format.*save it as \.docx"):
        parse_bytes(ole, name="memo.docx")


def test_binary_content_as_text_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"'data\.txt' is not a text file"):
        parse_bytes(os.urandom(4096) + b"\0" * 100, name="data.txt")


def test_unsupported_types() -> None:
    with pytest.raises(InvalidRequest, match=r"'\.exe' files are not supported; supported: \.pdf"):
        parse_bytes(b"MZ...", name="setup.exe")
    with pytest.raises(InvalidRequest, match=r"media type 'image/png'"):
        parse_bytes(b"abc", name="upload", media_type="image/png")


def test_type_from_content_when_name_says_nothing(docx_bytes: bytes) -> None:
    assert parse_bytes(docx_bytes, name="upload").media_type == DOCX
    doc = parse_bytes(docx_bytes, name="x.bin", media_type="application/octet-stream")
    assert doc.media_type == DOCX


def test_text_plain_label_defers_to_a_markdown_name() -> None:
    doc = parse_bytes(b"# Title\n\nBody.", name="README.md", media_type="text/plain")
    assert doc.media_type == "text/markdown"


def _zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_bomb_disguised_as_docx_is_refused_before_inflating() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            for _ in range(20):
                member.write(b"\0" * (1024 * 1024))
    data = out.getvalue()
    assert len(data) < 100_000
    with pytest.raises(InvalidRequest, match=r"'bomb\.docx' would expand \d+ times .*zip bomb"):
        parse_bytes(data, name="bomb.docx")


def test_zip_over_the_total_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "MAX_UNZIPPED_BYTES", 1024 * 1024)
    data = _zip(
        {"xl/workbook.xml": b"<workbook/>", "xl/big.bin": os.urandom(2 * 1024 * 1024)},
        method=zipfile.ZIP_STORED,
    )
    with pytest.raises(InvalidRequest, match=r"'sheet\.xlsx' would expand to 2\.0 MB .* limit"):
        parse_bytes(data, name="sheet.xlsx")


def test_zip_with_too_many_members_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "MAX_ZIP_MEMBERS", 10)
    data = _zip({f"ppt/slide{n}.xml": b"<x/>" for n in range(12)})
    with pytest.raises(InvalidRequest, match=r"'deck\.pptx' is a ZIP package of 12 members"):
        parse_bytes(data, name="deck.pptx")


def test_damaged_docx_is_refused(docx_bytes: bytes) -> None:
    data = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document"})
    with pytest.raises(InvalidRequest, match=r"'torn\.docx' could not be read as a Word document"):
        parse_bytes(data, name="torn.docx")
    with pytest.raises(InvalidRequest, match=r"'cut\.docx'"):
        parse_bytes(docx_bytes[: len(docx_bytes) // 2], name="cut.docx")


def test_missing_parser_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(ConfigError, match=r"'pypdf'.*pip install 'graft\[knowledge\]'"):
        parse_bytes(make_pdf(HANDBOOK_PAGES), name="h.pdf")


def test_the_package_imports_without_parser_libraries() -> None:
    code = (
        "import sys\n"
        "for name in ('pypdf', 'docx', 'pptx', 'openpyxl', 'selectolax', 'markdown_it'):\n"
        "    sys.modules[name] = None\n"
        "import graft.knowledge, graft.knowledge.parse, graft.knowledge.chunk\n"
        "print(graft.knowledge.parse_bytes(b'plain', name='a.txt').text)\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plain"


def test_parsing_is_deterministic(docx_bytes: bytes) -> None:
    assert parse_bytes(docx_bytes, name="a.docx") == parse_bytes(docx_bytes, name="a.docx")
    assert (
        parse_bytes(make_docx(), name="a.docx").sections
        == parse_bytes(docx_bytes, name="a.docx").sections
    )
