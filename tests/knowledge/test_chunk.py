"""graft.knowledge.chunk: structure first, sizes kept, Chinese cut at sentence ends, offsets."""

from __future__ import annotations

import re
import unicodedata

import pytest
from tests.knowledge.conftest import make_docx, make_pdf

from graft.knowledge import Chunk, ParsedDocument, Section, chunk_document, parse_bytes
from graft.knowledge.chunk import CJK_WEIGHT, text_size

SENTENCE_END = "。！？；.!?;"


def document(*sections: Section, title: str = "Handbook") -> ParsedDocument:
    return ParsedDocument(title, list(sections), "text/plain", None, {})


def heading(*path: str) -> Section:
    return Section(path[-1], path, kind="heading")


def body(chunk: Chunk) -> str:
    return chunk.text.split("\n", 1)[1]


def check_invariants(doc: ParsedDocument, chunks: list[Chunk], max_chars: int) -> None:
    """What holds for every chunking: sizes, offsets, breadcrumbs, order."""
    text = doc.text
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert text_size(chunk.text) <= max_chars, chunk
        assert len(chunk.text) <= max_chars
        assert text[chunk.char_start : chunk.char_end] == body(chunk)
        assert body(chunk).strip() == body(chunk) and body(chunk)
        crumb = chunk.text.split("\n", 1)[0]
        expected = " > ".join(
            chunk.heading_path
            if chunk.heading_path[:1] == (doc.title,)
            else (doc.title, *chunk.heading_path)
        )
        assert crumb == expected or (crumb.endswith("…") and expected.startswith(crumb[:-1]))
        assert chunk.section == (chunk.heading_path[-1] if chunk.heading_path else "")
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts)


def chinese_paragraph(sentences: int) -> str:
    return "".join(
        f"第{n}条规定员工在请假期间应当保持通讯畅通并及时回复主管的消息"
        + ("！" if n % 5 == 0 else "？" if n % 7 == 0 else "。")
        for n in range(1, sentences + 1)
    )


def english_paragraph(sentences: int) -> str:
    return " ".join(
        f"Rule {n} says that employees on leave keep their phone on and answer their manager."
        for n in range(1, sentences + 1)
    )


# --- sizes -------------------------------------------------------------------------------


def test_text_size_counts_cjk_characters_heavier() -> None:
    assert text_size("leave") == 5
    assert text_size("年假") == 2 * CJK_WEIGHT
    assert text_size("年假 10 days，") == 2 * CJK_WEIGHT + 8 + CJK_WEIGHT  # full-width comma


@pytest.mark.parametrize("max_chars", [120, 300, 1200])
def test_sizes_hold_for_long_english_and_chinese(max_chars: int) -> None:
    doc = document(
        heading("Handbook"),
        heading("Handbook", "Leave"),
        Section(english_paragraph(40), ("Handbook", "Leave")),
        heading("Handbook", "请假"),
        Section(chinese_paragraph(60), ("Handbook", "请假")),
        Section("\n\n".join(chinese_paragraph(3) for _ in range(10)), ("Handbook", "请假")),
    )
    chunks = chunk_document(doc, max_chars=max_chars, overlap_chars=max_chars // 8)
    check_invariants(doc, chunks, max_chars)
    assert len(chunks) > 3


def test_default_chunk_sizes_fit_a_512_token_embedder() -> None:
    doc = document(Section(chinese_paragraph(200), ()), Section(english_paragraph(100), ()))
    chunks = chunk_document(doc)
    wide = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
    for chunk in chunks:
        cjk = len(wide.findall(chunk.text))
        # At most one token per CJK character and one per four other characters.
        assert cjk + (len(chunk.text) - cjk) / 4 <= 512


# --- where cuts fall ---------------------------------------------------------------------


def test_chinese_without_spaces_is_cut_at_sentence_ends() -> None:
    paragraph = chinese_paragraph(80)
    assert " " not in paragraph
    doc = document(Section(paragraph, ("请假",)))
    # 150 is 50 CJK characters, more than one sentence (34): overlaps start a sentence.
    chunks = chunk_document(doc, max_chars=600, overlap_chars=150)
    check_invariants(doc, chunks, 600)
    assert len(chunks) > 5
    for chunk in chunks:
        assert body(chunk)[-1] in SENTENCE_END
        assert body(chunk).startswith("第")  # overlap included
    assert any(b.char_start < a.char_end for a, b in zip(chunks, chunks[1:], strict=False))


def test_no_overlap_rather_than_a_sentence_fragment() -> None:
    doc = document(Section(chinese_paragraph(80), ()))
    # 75 is 25 CJK characters, less than one sentence (34): no clean place to start early.
    chunks = chunk_document(doc, max_chars=300, overlap_chars=75)
    assert all(a.char_end <= b.char_start for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(body(c).startswith("第") for c in chunks)


def test_english_is_cut_at_sentence_ends() -> None:
    doc = document(Section(english_paragraph(30), ()))
    chunks = chunk_document(doc, max_chars=400, overlap_chars=100)
    check_invariants(doc, chunks, 400)
    assert all(body(c).endswith(".") and body(c).startswith("Rule") for c in chunks)


def test_paragraph_breaks_come_before_sentence_ends() -> None:
    paragraphs = [english_paragraph(2), english_paragraph(3), english_paragraph(2)]
    doc = document(Section("\n\n".join(paragraphs), ()))
    chunks = chunk_document(doc, max_chars=400, overlap_chars=0)
    assert [body(c) for c in chunks] == paragraphs


def test_decimal_points_are_not_sentence_ends() -> None:
    text = "The rate is 3.14159 per unit and more " * 30
    doc = document(Section(text.strip(), ()))
    for chunk in chunk_document(doc, max_chars=200, overlap_chars=0):
        assert not re.search(r"\d\.$", body(chunk))
        assert not re.match(r"^\d", body(chunk))


def test_tables_are_cut_between_rows() -> None:
    rows = [f"姓名: 员工{n}; 部门: 研发; 年假天数: {n % 20}" for n in range(60)]
    doc = document(Section("\n".join(rows), ("员工",), kind="table"))
    chunks = chunk_document(doc, max_chars=300, overlap_chars=0)
    check_invariants(doc, chunks, 300)
    assert [line for c in chunks for line in body(c).splitlines()] == rows


def test_hard_cut_keeps_graphemes_whole() -> None:
    accented = "e\u0301" * 400
    family = "👨\u200d👩\u200d👧" * 80
    flags = "🇨🇳🇬🇧" * 100
    doc = document(Section(accented, ()), Section(family, ()), Section(flags, ()))
    chunks = chunk_document(doc, max_chars=100, overlap_chars=10)
    check_invariants(doc, chunks, 100)
    for chunk in chunks:
        piece = body(chunk)
        assert unicodedata.category(piece[0]) != "Mn"
        assert "\u200d" not in (piece[0], piece[-1])
        if piece[0] in "🇨🇳🇬🇧":
            assert len(piece) % 2 == 0 and piece[0] in "🇨🇬"
    assert len(chunks) > 10


def test_text_without_any_boundary_is_hard_cut() -> None:
    doc = document(Section("年" * 1000, ()))
    chunks = chunk_document(doc, max_chars=150, overlap_chars=0)
    check_invariants(doc, chunks, 150)
    assert "".join(body(c) for c in chunks) == "年" * 1000


# --- structure ---------------------------------------------------------------------------


def test_small_sections_under_one_heading_merge() -> None:
    doc = document(
        heading("Handbook"),
        heading("Handbook", "Leave"),
        heading("Handbook", "Leave", "Sick leave"),
        Section("Bring a doctor's note.", ("Handbook", "Leave", "Sick leave")),
        Section("- Tell your manager", ("Handbook", "Leave", "Sick leave"), kind="list"),
        heading("Handbook", "Leave", "Annual leave"),
        Section("Ten days a year.", ("Handbook", "Leave", "Annual leave")),
        heading("Handbook", "Pay"),
        Section("Paid on the 25th.", ("Handbook", "Pay")),
    )
    chunks = chunk_document(doc)
    check_invariants(doc, chunks, 1200)
    leave, pay = chunks
    assert leave.heading_path == ("Handbook", "Leave")
    assert leave.text == (
        "Handbook > Leave\nSick leave\n\nBring a doctor's note.\n\n- Tell your manager"
        "\n\nAnnual leave\n\nTen days a year."
    )
    # A top-level heading is a wall, however small the parts on either side.
    assert pay.text == "Handbook > Pay\nPaid on the 25th."
    assert (pay.section, pay.page) == ("Pay", None)


def test_top_level_headings_with_the_same_text_stay_apart() -> None:
    doc = document(
        heading("Notes"),
        Section("First note.", ("Notes",)),
        heading("Notes"),
        Section("Second note.", ("Notes",)),
    )
    assert [body(c) for c in chunk_document(doc)] == ["First note.", "Second note."]


def test_one_section_keeps_its_full_breadcrumb() -> None:
    doc = document(
        heading("Handbook", "Leave", "Sick leave"),
        Section("Bring a doctor's note.", ("Handbook", "Leave", "Sick leave")),
        heading("Handbook", "Pay"),
        Section("Paid monthly.", ("Handbook", "Pay")),
    )
    first = chunk_document(doc)[0]
    assert first.text == "Handbook > Leave > Sick leave\nBring a doctor's note."
    assert first.section == "Sick leave"


def test_a_heading_never_ends_a_chunk() -> None:
    filler = english_paragraph(4)
    doc = document(
        Section(filler, ("Leave",)),
        heading("Leave", "Sick leave"),
        Section(filler, ("Leave", "Sick leave")),
        heading("Pay"),
        Section("Monthly.", ("Pay",)),
    )
    chunks = chunk_document(doc, max_chars=500, overlap_chars=0)
    check_invariants(doc, chunks, 500)
    assert all(not body(c).endswith("Sick leave") for c in chunks)
    assert chunks[1].heading_path == ("Leave", "Sick leave")
    assert body(chunks[1]) == filler


def test_overlap_stays_within_a_section() -> None:
    first, second = chinese_paragraph(40), english_paragraph(20)
    doc = document(Section(first, ("A",)), Section(second, ("A",)))
    chunks = chunk_document(doc, max_chars=300, overlap_chars=60)
    check_invariants(doc, chunks, 300)
    boundary = len(first)
    pairs = list(zip(chunks, chunks[1:], strict=False))
    overlapping = [(a, b) for a, b in pairs if b.char_start < a.char_end]
    assert overlapping  # pieces of one section overlap...
    for a, b in overlapping:  # ...but never across the two sections
        assert (a.char_end <= boundary) == (b.char_start < boundary)
    assert not any(c.char_start < boundary < c.char_end for c in chunks)


def test_no_overlap_when_asked() -> None:
    doc = document(Section(chinese_paragraph(60), ()))
    chunks = chunk_document(doc, max_chars=200, overlap_chars=0)
    assert all(a.char_end <= b.char_start for a, b in zip(chunks, chunks[1:], strict=False))


def test_pages_are_the_first_page_covered() -> None:
    doc = document(
        Section("Short page one.", (), page=1),
        Section("Short page two.", (), page=2),
        Section(english_paragraph(10), (), page=3),
    )
    chunks = chunk_document(doc, max_chars=300, overlap_chars=0)
    assert [c.page for c in chunks][:2] == [1, 3]
    assert body(chunks[0]) == "Short page one.\n\nShort page two."


def test_long_breadcrumbs_are_shortened() -> None:
    path = ("Handbook", "A very long chapter title " * 5, "另一个非常长的小节标题" * 3)
    doc = document(Section("Text.", path))
    (chunk,) = chunk_document(doc, max_chars=200, overlap_chars=0)
    crumb = chunk.text.split("\n", 1)[0]
    assert crumb.endswith("…") and text_size(crumb) <= 50
    assert chunk.heading_path == path


def test_a_document_of_headings_only_still_gives_a_chunk() -> None:
    doc = document(heading("Appendix"))
    (chunk,) = chunk_document(doc)
    assert chunk.text == "Handbook > Appendix\nAppendix"


def test_bad_arguments() -> None:
    doc = document(Section("x", ()))
    with pytest.raises(ValueError, match="max_chars"):
        chunk_document(doc, max_chars=50)
    with pytest.raises(ValueError, match="overlap_chars"):
        chunk_document(doc, max_chars=400, overlap_chars=-1)


# --- real documents ----------------------------------------------------------------------


def test_parsed_docx_chunks() -> None:
    doc = parse_bytes(make_docx(), name="handbook.docx")
    chunks = chunk_document(doc, max_chars=400, overlap_chars=40)
    check_invariants(doc, chunks, 400)
    assert [c.heading_path for c in chunks] == [
        ("Employee Handbook",),
        ("Employee Handbook", "Leave"),
        ("Employee Handbook", "请假制度"),
    ]
    assert (
        chunks[2].text
        == "Employee Handbook > 请假制度\n员工请病假时，应当提供医院证明。年假每年十天。"
    )


def test_parsed_pdf_chunks_keep_pages() -> None:
    pages = [[chinese_paragraph(3)[i : i + 30] for i in range(0, 90, 30)] for _ in range(6)]
    doc = parse_bytes(make_pdf(pages, title="制度汇编"), name="rules.pdf")
    chunks = chunk_document(doc, max_chars=300, overlap_chars=30)
    check_invariants(doc, chunks, 300)
    assert chunks[0].page == 1 and chunks[-1].page is not None and chunks[-1].page > 1
    assert all(c.text.startswith("制度汇编\n") for c in chunks)


def test_chunking_is_deterministic() -> None:
    doc = parse_bytes(make_docx(), name="handbook.docx")
    assert chunk_document(doc, max_chars=200) == chunk_document(doc, max_chars=200)
    long = document(Section(chinese_paragraph(100) + english_paragraph(30), ("A",)))
    assert chunk_document(long) == chunk_document(long)
