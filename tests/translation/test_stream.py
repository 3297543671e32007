from __future__ import annotations

import random

import pytest

from graft.translation.stream import Segment, SentenceSplitter


def split(text: str, step: int = 1, **options: int) -> list[Segment]:
    splitter = SentenceSplitter(**options)
    out: list[Segment] = []
    for start in range(0, len(text), step):
        out += splitter.feed(text[start : start + step])
    out += splitter.flush()
    assert "".join(s.text for s in out) == text  # nothing lost, nothing added
    return out


def texts(text: str, step: int = 1) -> list[str]:
    return [s.text for s in split(text, step)]


def test_english_sentences_keep_the_space_after_them() -> None:
    assert texts("Hello there. How are you? I'm fine!") == [
        "Hello there. ",
        "How are you? ",
        "I'm fine!",
    ]


def test_chinese_sentences_end_at_their_punctuation() -> None:
    assert texts("你好。今天天气很好！你呢？还有；最后…") == [
        "你好。",
        "今天天气很好！",
        "你呢？",
        "还有；",
        "最后…",
    ]
    assert texts("他说：“好。”然后走了。") == ["他说：“好。”", "然后走了。"]
    assert texts("真的吗?是的!") == ["真的吗?", "是的!"]


def test_numbers_abbreviations_initials_and_domains_do_not_end_a_sentence() -> None:
    text = "Pi is 3.14 today. See e.g. the docs at example.com. Ask J. Smith or Dr. Li. Done."
    assert texts(text) == [
        "Pi is 3.14 today. ",
        "See e.g. the docs at example.com. ",
        "Ask J. Smith or Dr. Li. ",
        "Done.",
    ]


def test_lines_are_units_and_list_numbers_stay_with_their_item() -> None:
    assert texts("Steps:\n1. Open it\n2. Close it\n\nThat is all.") == [
        "Steps:\n",
        "1. Open it\n",
        "2. Close it\n",
        "\n",
        "That is all.",
    ]


def test_code_blocks_pass_whole_lines_marked_as_code() -> None:
    out = split("Run this:\n```python\nprint('a. b')\n```\nThen stop. Ok")
    assert [(s.text, s.code) for s in out] == [
        ("Run this:\n", False),
        ("```python\n", True),
        ("print('a. b')\n", True),
        ("```\n", True),
        ("Then stop. ", False),
        ("Ok", False),
    ]


def test_the_incomplete_tail_is_held_until_flushed() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It shipped yesterday") == []
    assert splitter.feed(".") == []  # "." may be "3." of "3.5", or the end: wait for more
    assert splitter.feed(" It") == [Segment("It shipped yesterday. ")]
    assert splitter.feed(" will") == []
    assert splitter.flush() == [Segment("It will")]
    assert splitter.flush() == []


def test_a_run_on_tail_is_cut_at_a_space() -> None:
    text = "word " * 30
    out = split(text, max_chars=50)
    assert len(out) > 2 and all(len(s.text) <= 50 for s in out)
    assert all(s.text.endswith(" ") for s in out)


@pytest.mark.parametrize(
    "text",
    [
        "Hello there. How are you?\nFine! 你好。今天天气很好！\n\n```\ncode. here\n```\nEnd.",
        '他说：“好。”然后走了。 Then he said "Stop." And left (quietly.) Done',
        "1. One\n2. Two. Three? 四！",
    ],
)
def test_any_chunking_gives_the_same_sentences(text: str) -> None:
    whole = split(text, len(text))
    rng = random.Random(7)
    for _ in range(20):
        splitter = SentenceSplitter()
        out: list[Segment] = []
        start = 0
        while start < len(text):
            end = start + rng.randint(1, 6)
            out += splitter.feed(text[start:end])
            start = end
        out += splitter.flush()
        assert out == whole
