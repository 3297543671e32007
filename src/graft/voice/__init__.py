"""Voice calls: speech in, the same chat turn as text, speech out (``graft call``).

The package owns the offline speech stack: locating the models shipped on PyPI
(``models``), cutting a 16 kHz stream into utterances (``vad``), speech to text (``stt``),
text to speech (``tts``) and the voice turn that joins them to ``run_turn`` (``pipeline``).
Nothing here downloads anything at run time. The heavy packages (the ``voice`` extra) are
imported only when a model is loaded, so ``import graft.voice`` works without them and a
missing package becomes ``VoiceUnavailable`` naming the extra to install.
"""

from __future__ import annotations

from graft.errors import ConfigError

__all__ = ["VOICE_EXTRA_HINT", "VoiceUnavailable"]

VOICE_EXTRA_HINT = 'install the voice extra: pip install "graft[voice]"'


class VoiceUnavailable(ConfigError):
    """A package or model the voice stack needs is missing (or its files are damaged)."""

    code = "voice_unavailable"
