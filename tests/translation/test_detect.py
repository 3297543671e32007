from __future__ import annotations

import time

import pytest

from graft.translation import detect as detect_module
from graft.translation.detect import adetect, detect, has_letters


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的订单在哪里？", "zh"),
        ("我的訂單在哪裡？這個問題還沒解決。", "zh-Hant"),
        ("注文はどこですか？", "ja"),
        ("제 주문은 어디에 있나요?", "ko"),
        ("Где мой заказ?", "ru"),
        ("Πού είναι η παραγγελία μου;", "el"),
        ("คำสั่งซื้อของฉันอยู่ที่ไหน", "th"),
        ("Where is my order? I placed it last week.", "en"),
        ("好", "zh"),
        # Mixed text leans to the non-Latin script.
        ("请帮我 debug 这个 Python error", "zh"),
    ],
)
def test_scripts_decide_most_languages(text: str, language: str) -> None:
    assert detect(text) == language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Bonjour, où est ma commande ?", "fr"),
        ("Hallo, wo ist meine Bestellung?", "de"),
        ("Olá, tudo bem com o meu pedido?", "pt"),
        ("Де моє замовлення?", "uk"),
    ],
)
def test_py3langid_tells_languages_of_one_script_apart(text: str, language: str) -> None:
    assert detect(text) == language


@pytest.mark.parametrize("text", ["ok", "3.14", "", "   ", "🙂", "Danke"])
def test_too_little_text_decides_nothing(text: str) -> None:
    assert detect(text) is None


def test_without_py3langid_latin_text_is_english_only_when_it_reads_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(detect_module, "_loaded", True)
    monkeypatch.setattr(detect_module, "_identifier", None)
    assert detect("Where is my order? I placed it last week.") == "en"
    assert detect("Bonjour, où est ma commande ?") is None
    assert detect("Где мой заказ?") == "ru"
    assert detect("我的订单在哪里？") == "zh"


async def test_adetect_is_fast_once_loaded() -> None:
    assert await adetect("Where is my order?") == "en"
    started = time.perf_counter()
    for _ in range(200):
        detect("Where is my order? I placed it last week, and it has not arrived.")
    assert (time.perf_counter() - started) / 200 < 0.002


def test_has_letters() -> None:
    assert has_letters("a") and has_letters("好") and not has_letters("3.14 🙂 -")
