"""Language codes: one canonical form inside graft, and each backend's form at its edge.

People, models and services name languages differently: ``zh-CN``, ``zh_Hans``, ``ZH``,
``Chinese``, ``中文``; DeepL wants ``EN-US`` as a target but ``EN`` as a source. graft keeps
one form, a lower-case ISO 639-1 code with the two distinctions that change the text kept:
Chinese script (``zh`` is Simplified, ``zh-Hant`` Traditional) and English and Portuguese
regions (``en-GB``, ``pt-BR``; plain ``en`` and ``pt`` otherwise). Every other region is
dropped: ``de-AT`` translates as ``de``. ``normalize`` reads the other forms; ``deepl_*``,
``libretranslate_code`` and ``english_name`` write what each backend expects.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "deepl_source",
    "deepl_target",
    "english_name",
    "from_service",
    "libretranslate_code",
    "normalize",
    "same_language",
]

_CODE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?$")

_NAMES: Final = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Simplified Chinese",
    "zh-Hant": "Traditional Chinese",
}
_ALIASES: Final = {
    **{name.lower(): code for code, name in _NAMES.items()},
    "chinese": "zh",
    "mandarin": "zh",
    "cmn": "zh",
    "中文": "zh",
    "汉语": "zh",
    "简体中文": "zh",
    "繁體中文": "zh-Hant",
    "繁体中文": "zh-Hant",
    "英语": "en",
    "英文": "en",
    "日本語": "ja",
    "日语": "ja",
    "한국어": "ko",
    "русский": "ru",
    "nb": "no",
    "iw": "he",
}
_TRADITIONAL_REGIONS: Final = frozenset({"tw", "hk", "mo"})
_KEPT_REGIONS: Final = {"en": frozenset({"gb", "us"}), "pt": frozenset({"br", "pt"})}


def normalize(code: str) -> str:
    """The canonical form of a language code or name: ``zh-CN`` → ``zh``, ``EN_us`` → ``en-US``.

    Raises ``ValueError`` for anything that is neither a known name nor shaped like a code.
    """
    text = code.strip().replace("_", "-").lower()
    if text in _ALIASES:
        return _ALIASES[text]
    found = _CODE.match(text)
    if found is None:
        raise ValueError(f"{code!r} is not a language code such as 'en', 'zh' or 'pt-BR'")
    language, script, region = found.groups()
    language = _ALIASES.get(language, language)
    if language == "zh":
        traditional = script == "hant" or (script is None and region in _TRADITIONAL_REGIONS)
        return "zh-Hant" if traditional else "zh"
    if region is not None and region in _KEPT_REGIONS.get(language, ()):
        return f"{language}-{region.upper()}"
    return language


def same_language(a: str | None, b: str | None) -> bool:
    """Whether two canonical codes are one language (``en`` and ``en-GB`` are)."""
    if a is None or b is None:
        return False
    if a.startswith("zh") or b.startswith("zh"):
        return a == b
    return a.split("-")[0] == b.split("-")[0]


def english_name(code: str) -> str:
    """The language's English name, for prompts: ``zh`` → ``Simplified Chinese``."""
    if code in _NAMES:
        return _NAMES[code]
    base = code.split("-")[0]
    name = _NAMES.get(base, code)
    return f"{name} ({code})" if base != code else name


def deepl_target(code: str) -> str:
    """DeepL's ``target_lang``: ``EN-US``, ``PT-PT`` and ``ZH-HANS`` where it wants a variant."""
    variants = {"en": "EN-US", "pt": "PT-PT", "zh": "ZH-HANS", "zh-Hant": "ZH-HANT"}
    return variants.get(code, code.upper())


def deepl_source(code: str) -> str:
    """DeepL's ``source_lang``: the bare language (``EN``, ``ZH``), never a variant."""
    return code.split("-")[0].upper()


def libretranslate_code(code: str) -> str:
    """LibreTranslate's code: ``zh`` (Simplified), ``zt`` (Traditional), else the language."""
    return "zt" if code == "zh-Hant" else code.split("-")[0]


def from_service(code: object) -> str | None:
    """A language code a service reported, canonical, or ``None`` when it is not one."""
    if not isinstance(code, str):
        return None
    if code.lower() == "zt":
        return "zh-Hant"
    try:
        return normalize(code)
    except ValueError:
        return None
