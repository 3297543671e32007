from __future__ import annotations

import numpy as np
import pytest

from graft.voice import VoiceUnavailable
from graft.voice.tts import (
    EspeakSpeaker,
    PiperSpeaker,
    SentenceSplitter,
    pcm_chunks,
    speaker_for,
)


def _split(pieces: list[str], *, first_clause: bool = True) -> list[str]:
    splitter = SentenceSplitter(first_clause=first_clause)
    out: list[str] = []
    for piece in pieces:
        out += splitter.feed(piece)
    return out + splitter.flush()


def test_english_sentences_are_cut_as_they_stream() -> None:
    splitter = SentenceSplitter(first_clause=False)
    assert splitter.feed("Two plus three") == []
    assert splitter.feed(" is five. Pi is 3.14") == ["Two plus three is five."]
    assert splitter.feed(" or so! Right?") == ["Pi is 3.14 or so!"]
    assert splitter.flush() == ["Right?"]
    assert splitter.flush() == []


def test_the_first_clause_is_spoken_early_once_it_is_long_enough() -> None:
    text = "Well, the weather in Paris today is sunny, warm and dry. Take a hat, please."
    assert _split([text]) == [
        "Well, the weather in Paris today is sunny,",
        "warm and dry.",
        "Take a hat, please.",
    ]
    assert _split([text], first_clause=False) == [
        "Well, the weather in Paris today is sunny, warm and dry.",
        "Take a hat, please.",
    ]


def test_a_long_first_sentence_is_spoken_after_its_first_words() -> None:
    streamed = "12 times 7 is a mathematical operation that repeats 12 seven times. Yes."
    pieces = [word + " " for word in streamed.split()]
    assert _split(pieces) == [
        "12 times 7 is a mathematical operation",
        "that repeats 12 seven times.",
        "Yes.",
    ]
    assert _split(["Short one. Then a much longer second sentence that goes on and on."]) == [
        "Short one.",
        "Then a much longer second sentence that goes on and on.",
    ]


def test_chinese_punctuation_ends_sentences_without_spaces() -> None:
    pieces = ["你好", "！今天北京的天气", "怎么样？晴天，", "二十度。还有"]
    assert _split(pieces, first_clause=False) == [
        "你好！",
        "今天北京的天气怎么样？",
        "晴天，二十度。",
        "还有",
    ]
    assert _split(["今天北京的天气，很好。"]) == ["今天北京的天气，", "很好。"]


def test_line_breaks_end_a_piece() -> None:
    assert _split(["- eggs\n- milk\n"], first_clause=False) == ["- eggs", "- milk"]


@pytest.fixture(scope="module")
def piper() -> PiperSpeaker:
    return PiperSpeaker()


def test_piper_speaks_english_as_pcm16(piper: PiperSpeaker) -> None:
    pcm = b"".join(piper.speak("Two plus three is five."))
    samples = np.frombuffer(pcm, "<i2")
    assert piper.sample_rate == 22_050
    assert 0.8 < samples.size / piper.sample_rate < 4
    assert np.abs(samples).max() > 1000
    assert list(piper.speak("  ")) == []


def test_espeak_speaks_any_language() -> None:
    for language in ("en", "zh"):
        speaker = EspeakSpeaker(language)
        pcm = b"".join(
            speaker.speak("你好，今天天气很好。" if language == "zh" else "Hello there.")
        )
        assert len(pcm) / 2 / speaker.sample_rate > 0.3
    assert EspeakSpeaker("zh").voice == "cmn"


def test_english_gets_piper_and_the_rest_espeak(piper: PiperSpeaker) -> None:
    assert isinstance(speaker_for("en"), PiperSpeaker)
    assert isinstance(speaker_for("fr"), EspeakSpeaker)  # Chinese: tests/voice/test_kokoro.py


def test_pcm_is_cut_into_chunks_of_4096_samples() -> None:
    pcm = bytes(range(256)) * 70  # 17 920 bytes: 8 960 samples
    chunks = list(pcm_chunks(pcm))
    assert [len(chunk) for chunk in chunks] == [8192, 8192, 1536]
    assert b"".join(chunks) == pcm and list(pcm_chunks(b"")) == []


def test_a_missing_espeak_says_how_to_install_it() -> None:
    with pytest.raises(VoiceUnavailable, match="apt-get install espeak-ng"):
        EspeakSpeaker(executable="espeak-ng-not-here")
