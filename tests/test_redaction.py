from __future__ import annotations

import random
import time

import pytest

from graft.redaction import KINDS, PLACEHOLDERS, Redaction, redact

VALID_ID = "11010519491231002X"  # the GB 11643-1999 example
VALID_IDS = ("440304199001010011", "310115198503151230", "11010519491231002x")
CARDS = (
    "4111111111111111",  # Visa test number
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500 0000 0000 0004",  # Mastercard
    "2223 0000 4841 0010",  # Mastercard 2-series
    "3782 822463 10005",  # Amex, 4-6-5
    "6212260200000000006",  # UnionPay, 19 digits
    "6212 2602 0000 0000 006",
)


def redacted(text: str, kinds: frozenset[str] | None = None) -> str:
    return redact(text, kinds).text


# --- e-mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ann@example.com today", "write to [email] today"),
        ("Ann.Lee+work@mail.example.com.cn.", "[email]."),
        ("13800138000@163.com", "[email]"),
        ("<mailto:ops_team%x@corp-1.example.org>", "<mailto:[email]>"),
        ("邮箱是ann@example.com谢谢", "邮箱是[email]谢谢"),
    ],
)
def test_email_is_redacted(text: str, expected: str) -> None:
    assert redacted(text) == expected


@pytest.mark.parametrize(
    "text", ["@username", "user@localhost", "a@b.c", "ann@example", "ann at example dot com"]
)
def test_email_lookalikes_are_left(text: str) -> None:
    assert redacted(text) == text


# --- phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "+8613800138000",
        "+86-13800138000",
        "0086 13800138000",
        "8613800138000",
        "19912345678",
        "010-12345678",
        "0755-1234567",
        "021 6123 4567",
        "(010) 12345678",
        "（0755）1234567",
        "+86 10 1234 5678",
        "+1 (415) 555-2671",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+14155552671",
        "+852 2123 4567",
    ],
)
def test_phone_numbers_are_redacted(number: str) -> None:
    result = redact(f"call {number} now")
    assert result.text == "call [phone] now"
    assert result.counts == {"phone": 1}


@pytest.mark.parametrize(
    "text",
    [
        "12800138000",  # no such mobile prefix
        "1380013800",  # one digit short
        "138001380001",  # one digit long
        "v13800138000",  # part of an identifier
        "13800138000abc",
        "15000000000 yuan",  # an amount, not a number anyone can call
        "price 13800138000.50",  # a decimal
        "3.13800138000",
        "ratio 0.13800138000",
        "+12345678",  # too short for an international number
        "+1 2024-01-01",
        "+5 10 20 30 40",
        "01012345678",  # a landline needs its separator
        "0123-4567890",  # no such area code
    ],
)
def test_phone_lookalikes_are_left(text: str) -> None:
    assert redacted(text) == text


# --- Chinese resident ID numbers -------------------------------------------------------


@pytest.mark.parametrize("number", [VALID_ID, *VALID_IDS])
def test_valid_id_numbers_are_redacted(number: str) -> None:
    result = redact(f"身份证号{number}。")
    assert result.text == "身份证号[id number]。"
    assert result.counts == {"cn_id": 1}


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check character
        "11010519491231002Y",
        "110105194902300020",  # 30 February (the check character fits the digits)
        "110105194913010029",  # month 13
        "110105169912310025",  # year 1699
        "010105194912310026",  # an area code never starts with 0
        "11010519491231002",  # 17 characters
    ],
)
def test_invalid_id_numbers_are_left(number: str) -> None:
    assert redacted(number, frozenset({"cn_id"})) == number


# --- bank cards -----------------------------------------------------------------------


@pytest.mark.parametrize("number", CARDS)
def test_card_numbers_are_redacted(number: str) -> None:
    result = redact(f"卡号{number}，谢谢")
    assert result.text == "卡号[card number]，谢谢"
    assert result.counts == {"bank_card": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111 123", "[card number] 123"),
        ("4111 1111 1111 1111 12/27", "[card number] 12/27"),
        ("4111-1111-1111-1111-12", "[card number]-12"),
        ("4111 1111 1111 1111 5500 0000 0000 0004", "[card number] [card number]"),
        ("+86 138 0013 8000 5500 0000 0000 0004", "[phone] [card number]"),
    ],
)
def test_a_grouped_number_that_runs_on_is_cut_between_groups(text: str, expected: str) -> None:
    assert redacted(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "order 2024010112345670",  # passes Luhn, but no card starts with 2024
        "1700000000004",  # a millisecond timestamp that passes Luhn
        "411111111111",  # 12 digits
        "41111111111111111111",  # 20 digits
        "4111.1111.1111.1111",
        "x4111111111111111",
    ],
)
def test_card_lookalikes_are_left(text: str) -> None:
    assert redacted(text) == text


# --- what is never touched ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Order #123456 shipped on 2024-01-15 at 13:45:00.",
        "订单号20240115000123已发货，金额1,234,567.89元。",
        "graft 0.1.0, Python 3.11.9, build 20240115.1",
        "The total was 12,345,678,901,234 and pi is 3.14159265358979.",
        "IP 192.168.100.200, port 8080, 2024/01/15",
        "ISBN 978-3-16-148410-0",
        "",
    ],
)
def test_ordinary_text_and_numbers_are_left(text: str) -> None:
    result = redact(text)
    assert result == Redaction(text, {})


def test_cjk_characters_may_touch_every_kind() -> None:
    text = f"我的手机号是13800138000谢谢邮箱ann@example.com身份证{VALID_ID}卡号4111111111111111好的"
    result = redact(text)
    assert result.text == "我的手机号是[phone]谢谢邮箱[email]身份证[id number]卡号[card number]好的"
    assert result.counts == {"phone": 1, "email": 1, "cn_id": 1, "bank_card": 1}


def test_lists_without_spaces_are_redacted_item_by_item() -> None:
    text = "13800138000,13900139000;ann@example.com,4111111111111111/+44 20 7946 0958"
    assert redacted(text) == "[phone],[phone];[email],[card number]/[phone]"


def test_kinds_choose_what_is_redacted() -> None:
    text = f"13800138000 ann@example.com {VALID_ID} 4111111111111111"
    assert redacted(text, frozenset({"email"})) == (
        f"13800138000 [email] {VALID_ID} 4111111111111111"
    )
    assert redacted(text, frozenset({"phone", "bank_card"})) == (
        f"[phone] ann@example.com {VALID_ID} [card number]"
    )
    assert redacted(text, frozenset()) == text
    with pytest.raises(ValueError, match="unknown kinds \\['passport'\\]"):
        redact(text, frozenset({"passport"}))


def test_an_id_number_that_passes_luhn_is_an_id_number() -> None:
    # 440304199001010249 passes both checks; the ID check is tried first.
    assert redact("440304199001010249", frozenset({"bank_card"})).counts == {"bank_card": 1}
    assert redact("440304199001010249").counts == {"cn_id": 1}


def test_placeholders_name_every_kind() -> None:
    assert set(PLACEHOLDERS) == KINDS == {"email", "phone", "cn_id", "bank_card"}


# --- properties -----------------------------------------------------------------------

PIECES = (
    "13800138000",
    "+86 138 0013 8000",
    "010-12345678",
    "+44 20 7946 0958",
    "ann@example.com",
    VALID_ID,
    *CARDS,
    "2024-01-15",
    "1,234.50",
    "v1.2.3",
    "4111111111111112",
    "12345",
    "谢谢",
    "电话",
    "call",
    " ",
    "-",
    ".",
    ",",
    "+",
    "(",
    ")",
    "@",
    "7",
    "x",
    "X.",
    "3.",
    ".5",
    "0",
    "00",
    "86",
    "0755",
    "（",
    "）",
    "[",
    "]",
    "_",
    "%",
    "a@b",
    ".cn",
)


def random_texts(count: int, seed: int = 20240115) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(PIECES, k=rng.randint(1, 12))) for _ in range(count)]


def test_redacting_twice_changes_nothing_more() -> None:
    for text in random_texts(3000):
        once = redact(text)
        assert redact(once.text) == Redaction(once.text, {}), text


def test_counts_match_the_placeholders() -> None:
    for text in random_texts(400, seed=7):
        result = redact(text)
        for kind, placeholder in PLACEHOLDERS.items():
            assert result.text.count(placeholder) == result.counts.get(kind, 0), text


@pytest.mark.parametrize("piece", ["13800138000", "ann@example.com", VALID_ID, *CARDS])
def test_items_between_separators_never_survive(piece: str) -> None:
    separators = [" ", "，", "。", "谢谢", "\n", "(", ")", ":", "是", "、", "\t"]
    rng = random.Random(piece)
    for _ in range(50):
        before, after = rng.choice(separators), rng.choice(separators)
        text = f"{before}{piece}{after}"
        assert piece not in redacted(text), text


# --- cost -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1" * 1_000_000,
        "1234 " * 200_000,
        "1-" * 500_000,
        "a." * 500_000,
        "a@" * 500_000,
        "a@" + "b." * 499_999,
        "+1 (1)" * 170_000,
        ("我的手机号是13800138000谢谢 ann@example.com 4111 1111 1111 1111 订单2024 " * 16_000),
        "".join(random.Random(1).choices("0123456789 -+.@a(", k=1_000_000)),
    ],
    ids=["digits", "groups", "dashes", "dots", "ats", "labels", "parens", "mixed", "random"],
)
def test_a_megabyte_is_redacted_quickly(text: str) -> None:
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 2
