"""Finding and masking personal data: e-mail, phone, Chinese ID and bank card numbers.

``redact`` is what the ``redact_pii`` middleware runs over text bound for an external model
provider; it is a pure function, so logs and exports can use it too. This module owns the
patterns and the checks behind them. Each kind is a precompiled pattern that finds a
candidate and a check that decides: an ID number needs a real birth date and a valid
GB 11643-1999 check character, a card number must pass the Luhn check and start like a
payment card, a phone number must have 10 to 15 digits. A candidate that fails its check is
left as written, so order numbers, dates, times, versions and amounts stay readable.

Numbers are delimited by what they must not touch (an ASCII letter or digit, or a decimal
point between digits), never by word boundaries: Chinese puts characters directly against
numbers (``我的手机号是13800138000谢谢``), and to ``re`` those are word characters. Every
quantifier is bounded and adjacent parts of a pattern never compete for the same
characters, so a failed match costs time linear in the text: nothing to backtrack into.

Kinds are tried in a fixed order, checked kinds first (``email``, ``cn_id``, ``bank_card``,
then ``phone``): an 18-digit ID number that also passes the Luhn check is an ID number.
Placeholders hold no digit or ``@``, so redacting twice gives what redacting once did.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

__all__ = ["KINDS", "PLACEHOLDERS", "Redaction", "redact"]

PLACEHOLDERS: dict[str, str] = {
    "email": "[email]",
    "cn_id": "[id number]",
    "bank_card": "[card number]",
    "phone": "[phone]",
}
"""What each kind is replaced with, in the order the kinds are tried."""

KINDS = frozenset(PLACEHOLDERS)


@dataclass(frozen=True, slots=True)
class Redaction:
    """The redacted text, and how many items of each kind were replaced."""

    text: str
    counts: dict[str, int]


# A number that starts with a digit must not follow a letter, a digit or "3.", and a number
# must not be followed by a letter, a digit, or ".5" when it ends in a digit: "v13800138000",
# "0.13800138000" and "13800138000.5" are not phone numbers. "+" and "(" delimit a number
# by themselves. The rules are symmetric (where one of two adjacent candidates is refused,
# so is the other), so replacing one never changes what its neighbour looks like to a
# second pass.
_START = r"(?:(?<![0-9A-Za-z])(?<![0-9]\.)(?=[0-9])|(?=[+(（]))"
_END = r"(?![0-9A-Za-z])(?!(?<=[0-9])\.[0-9])"

_EMAIL = re.compile(
    # A "]" ends a placeholder, which stands for text that the local part could run into.
    r"(?<![A-Za-z0-9._%+\]-])[A-Za-z0-9._%+-]{1,64}"
    r"@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_CN_ID = re.compile(
    _START + r"[1-9][0-9]{5}"  # area
    r"(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"  # birth date
    r"[0-9]{3}[0-9Xx]" + _END  # sequence, check character
)
_BANK_CARD = re.compile(
    # (?=[234569]) drops what cannot be a card before any Python runs: see _is_card.
    _START + r"(?=[234569])(?:[0-9]{13,19}"
    r"|[0-9]{4}(?P<sep>[ -])[0-9]{4}(?P=sep)[0-9]{4}(?:(?P=sep)[0-9]{1,4}){1,2}"  # 4-4-4-4(-3)
    r"|[0-9]{4}(?P<sep2>[ -])[0-9]{6}(?P=sep2)[0-9]{4,5})" + _END  # 4-6-5 (Amex), 4-6-4
)
_CN_AREA = r"(?:010|02[0-9]|0[3-9][0-9]{2})"
_PHONE_BODY = (
    # mobile, 138 0013 8000, with +86 / 0086 / 86 in front or not
    r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}"
    # landline, 010-12345678, (0755) 1234567
    rf"|(?:[(（]{_CN_AREA}[)）] ?|{_CN_AREA}[ -])[1-9][0-9]{{2,3}}[ -]?[0-9]{{4}}"
    # international, +44 20 7946 0958, +1 (415) 555-2671, +14155552671
    r"|\+[1-9][0-9]{0,14}(?:[ -]?\([0-9]{1,4}\)[ -]?[0-9]{1,6})?(?:[ -][0-9]{1,6}){0,6}"
)
_PHONE = re.compile(rf"{_START}(?:{_PHONE_BODY}){_END}")
_PHONE_ONLY = re.compile(_PHONE_BODY)
_NOT_DIGIT = re.compile(r"[^0-9]")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _is_cn_id(number: str) -> bool:
    number = number.upper()
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:  # 19900230
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number, _ID_WEIGHTS, strict=False))
    return _ID_CHECK[total % 11] == number[17]


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2])) + sum(_LUHN_DOUBLED[int(d)] for d in digits[-2::-2])
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    # Payment cards start with 3-6 (Amex, JCB, Visa, Mastercard, UnionPay 62), 9 (older
    # Chinese debit cards) or 2221-2720 (Mastercard); 13-digit millisecond timestamps
    # (17...) and date-stamped order numbers (2024...) do not.
    return (
        13 <= len(digits) <= 19
        and (digits[0] in "34569" or 2221 <= int(digits[:4]) <= 2720)
        and _luhn(digits)
    )


def _is_phone(text: str) -> bool:
    digits = _NOT_DIGIT.sub("", text)
    # 10-15 digits: "+1 2024-01-01" and "+12345678" are not numbers anyone can call, and
    # nobody's number ends in eight zeros ("15000000000" is an amount).
    return (
        10 <= len(digits) <= 15
        and not digits.endswith("00000000")
        and _PHONE_ONLY.fullmatch(text) is not None
    )


def _longest(check: Callable[[str], bool]) -> Callable[[re.Match[str]], int]:
    """How much of a candidate passes ``check``: all of it, or its longest run of groups.

    A grouped number may run on into an expiry date, a CVV or the next number
    ("4111 1111 1111 1111 12/27"): the item is the longest start of it that ends between
    two groups and passes.
    """

    def length(match: re.Match[str]) -> int:
        text = match.group()
        end = len(text)
        while end > 0 and not check(text[:end]):
            end = max(text.rfind(" ", 0, end), text.rfind("-", 0, end), 0)
        return end

    return length


_FINDERS: dict[str, tuple[re.Pattern[str], Callable[[re.Match[str]], int]]] = {
    "email": (_EMAIL, lambda match: len(match.group())),
    "cn_id": (_CN_ID, lambda match: len(match.group()) if _is_cn_id(match.group()) else 0),
    "bank_card": (_BANK_CARD, _longest(_is_card)),
    "phone": (_PHONE, _longest(_is_phone)),
}
"""Per kind: the pattern that finds candidates, and how much of a candidate is that kind."""


def redact(text: str, kinds: frozenset[str] | None = None) -> Redaction:
    """Replace the personal data of ``kinds`` (default: all of ``KINDS``) with placeholders.

    Args:
        text: Any text; Chinese and English may be mixed freely.
        kinds: Which of ``email``, ``phone``, ``cn_id`` and ``bank_card`` to replace.

    Raises:
        ValueError: ``kinds`` names an unknown kind.
    """
    if kinds is None:
        kinds = KINDS
    unknown = kinds - KINDS
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; known: {sorted(KINDS)}")
    counts: Counter[str] = Counter()
    for kind in _FINDERS:
        if kind in kinds:
            text = _replace(kind, text, counts)
    return Redaction(text, dict(counts))


def _replace(kind: str, text: str, counts: Counter[str]) -> str:
    pattern, length_of = _FINDERS[kind]
    parts: list[str] = []
    copied = searched = 0
    while (match := pattern.search(text, searched)) is not None:
        length = length_of(match)
        if not length:
            # Refused as a whole, so look again from the next character: "0013 8000 5500
            # 0000 0000 0004" is not a card, and "5500 0000 0000 0004" inside it is.
            searched = match.start() + 1
            continue
        parts += (text[copied : match.start()], PLACEHOLDERS[kind])
        copied = searched = match.start() + length
        counts[kind] += 1
    parts.append(text[copied:])
    return "".join(parts)
