"""Which language a text is in, offline, in microseconds.

Most of the answer is in the script: Han characters are Chinese (Traditional when its
traditional-only characters outnumber the simplified-only ones), any kana makes Han text
Japanese, Hangul is Korean, and Thai, Greek, Hebrew and Devanagari each name one language.
That needs no model and covers graft's Chinese and English users and their neighbours.
Mixed text leans to the non-Latin script (``请帮我 debug 这个 error`` is Chinese): a Chinese
speaker writes English terms far more often than the other way round.

Latin, Cyrillic and Arabic script are shared by many languages. For those, when the optional
``py3langid`` package is installed (``graft[translate]``: a naive Bayes model of 4.5 MB inside
the package, loaded once in ~1 s, then ~30 µs a text), it picks among the languages of that
script, and its answer counts only with a confidence of ``MIN_CONFIDENCE``. Without it, or
when it is unsure, Latin text is English if enough of its words are common English words,
Cyrillic is Russian, and anything else is ``None``: undecided, which callers treat as "no
evidence", never as a language. ``"ok"`` or ``"3.5"`` decide nothing.
"""

from __future__ import annotations

import importlib
import re
import threading
from typing import Any, Final

import anyio.to_thread

__all__ = ["MIN_CONFIDENCE", "adetect", "detect", "has_letters"]

MIN_CONFIDENCE: Final = 0.5
"""Below this py3langid's answer is ignored (it is at 0.05-0.2 on one or two short words)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SCRIPT_LANGUAGES: Final = {
    "Latn": _words("en fr de es it pt nl sv da no fi pl cs sk hu ro tr id ms vi ca hr sl lt lv et"),
    "Cyrl": frozenset({"ru", "uk", "bg", "sr", "be", "kk", "mk"}),
    "Arab": frozenset({"ar", "fa", "ur"}),
}
_SCRIPT_DEFAULT: Final = {
    "Hani": "zh",
    "Jpan": "ja",
    "Hang": "ko",
    "Cyrl": "ru",
    "Grek": "el",
    "Arab": "ar",
    "Hebr": "he",
    "Thai": "th",
    "Deva": "hi",
}
_RANGES: Final = (
    ("Hani", "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"),
    ("Kana", "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d"),
    ("Hang", "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"),
    ("Cyrl", "\u0400-\u04ff"),
    ("Grek", "\u0370-\u03ff"),
    ("Arab", "\u0600-\u06ff\u0750-\u077f"),
    ("Hebr", "\u0590-\u05ff"),
    ("Thai", "\u0e00-\u0e7f"),
    ("Deva", "\u0900-\u097f"),
    ("Latn", "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"),
)
_PATTERNS: Final = tuple((script, re.compile(f"[{chars}]")) for script, chars in _RANGES)
_WEIGHT: Final = {"Hani": 0.7, "Kana": 0.5, "Hang": 0.4}
"""About how much of a word one character is; alphabets count 0.2 (five letters a word)."""
_TRADITIONAL: Final = frozenset("們這個來說時會對為國學還麼與門後問開發見過體裡點當經條實頭")
_SIMPLIFIED: Final = frozenset("们这个来说时会对为国学还么与门后问开发见过体里点当经条实头")
_ENGLISH: Final = _words(
    "the a an and or but of to in on at for with from by is are was were be been am i you "
    "he she it we they my your our their this that these those what which who how why when "
    "where do does did not no yes can could will would should please thanks thank hello hi "
    "have has had me us them there here about if so just"
)
_WORD = re.compile(r"[A-Za-z']+")

_identifier: Any = None
_loaded = False
_lock = threading.Lock()


def _langid() -> Any:
    """py3langid's identifier, loaded on first use; ``None`` when it is not installed."""
    global _identifier, _loaded
    if _loaded:
        return _identifier
    with _lock:
        if not _loaded:
            try:
                module = importlib.import_module("py3langid.langid")
            except ImportError:
                module = None
            if module is not None:
                identifier = module.LanguageIdentifier.from_model_file(
                    module.MODEL_FILE, norm_probs=True
                )
                identifier.set_languages(sorted(set().union(*_SCRIPT_LANGUAGES.values())))
                _identifier = identifier
            _loaded = True
    return _identifier


def _script_units(text: str) -> dict[str, float]:
    units: dict[str, float] = {}
    for script, pattern in _PATTERNS:
        count = len(pattern.findall(text))
        if count:
            units[script] = count * _WEIGHT.get(script, 0.2)
    kana = units.pop("Kana", 0.0)
    if kana:  # Japanese writes its Han characters (kanji) between kana
        units["Jpan"] = kana + units.pop("Hani", 0.0)
    return units


def has_letters(text: str) -> bool:
    """Whether ``text`` has any letter of a script this module knows (else: nothing to read)."""
    return any(pattern.search(text) for _, pattern in _PATTERNS)


def detect(text: str) -> str | None:
    """The canonical code of ``text``'s language (``zh``, ``en``, ``zh-Hant``), or ``None``.

    Loads py3langid on first use when it is installed (about a second): in async code call
    ``adetect``, which does that in a worker thread.
    """
    units = _script_units(text)
    if not units:
        return None
    # Non-Latin scripts win ties and near-ties: see the module docstring.
    script = max(units, key=lambda s: units[s] * (1.0 if s == "Latn" else 1.15))
    if script == "Hani":
        traditional = sum(c in _TRADITIONAL for c in text)
        return "zh-Hant" if traditional > sum(c in _SIMPLIFIED for c in text) else "zh"
    if script in _SCRIPT_LANGUAGES:
        guess = _classify(text, _SCRIPT_LANGUAGES[script])
        if guess is not None:
            return guess
    if script == "Latn":
        return "en" if _looks_english(text) else None
    return _SCRIPT_DEFAULT[script]


async def adetect(text: str) -> str | None:
    """``detect``, loading py3langid (once) in a worker thread instead of the event loop."""
    if not _loaded:
        await anyio.to_thread.run_sync(_langid)
    return detect(text)


def _classify(text: str, languages: frozenset[str]) -> str | None:
    identifier = _langid()
    if identifier is None:
        return None
    language, confidence = identifier.classify(text)
    if confidence < MIN_CONFIDENCE or language not in languages:
        return None
    return str(language)


def _looks_english(text: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    hits = sum(w in _ENGLISH for w in words)
    return hits >= 1 and hits >= 0.25 * len(words)
