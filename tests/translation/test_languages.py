from __future__ import annotations

import pytest

from graft.translation.languages import (
    deepl_source,
    deepl_target,
    english_name,
    from_service,
    libretranslate_code,
    normalize,
    same_language,
)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh_Hans", "zh"),
        ("ZH-HANS-CN", "zh"),
        ("zh-TW", "zh-Hant"),
        ("zh-Hant", "zh-Hant"),
        ("Chinese", "zh"),
        ("中文", "zh"),
        ("en", "en"),
        ("EN-US", "en-US"),
        ("en_gb", "en-GB"),
        ("English", "en"),
        ("pt-BR", "pt-BR"),
        ("de-AT", "de"),
        ("ja", "ja"),
        ("iw", "he"),
    ],
)
def test_codes_and_names_normalise(given: str, canonical: str) -> None:
    assert normalize(given) == canonical


@pytest.mark.parametrize("bad", ["", "english please", "e", "zh-Hant-TW-x", "12"])
def test_nonsense_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a language code"):
        normalize(bad)


def test_each_backend_gets_its_own_form() -> None:
    assert [deepl_target(c) for c in ("en", "en-GB", "zh", "zh-Hant", "pt", "de")] == [
        "EN-US",
        "EN-GB",
        "ZH-HANS",
        "ZH-HANT",
        "PT-PT",
        "DE",
    ]
    assert [deepl_source(c) for c in ("en-GB", "zh-Hant", "de")] == ["EN", "ZH", "DE"]
    assert [libretranslate_code(c) for c in ("zh", "zh-Hant", "en-GB")] == ["zh", "zt", "en"]
    assert english_name("zh") == "Simplified Chinese" and english_name("en-GB") == "English (en-GB)"
    assert from_service("ZH") == "zh" and from_service("zt") == "zh-Hant"
    assert from_service(None) is None and from_service("??") is None


def test_same_language_ignores_region_but_not_chinese_script() -> None:
    assert same_language("en", "en-GB")
    assert not same_language("zh", "zh-Hant")
    assert not same_language("en", None)
