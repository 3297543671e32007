"""The ``translate`` middleware: the user speaks their language, the model works in its own.

An assistant turns it on with ``middleware = ["translate"]``. On input it reads the user's
language from their last message (or the last one before it that reveals a language: ``ok``
reveals none). When that differs from ``working_language`` (default ``en``), every user and
assistant message of the conversation that is not in the working language goes to the model
translated (the store keeps what the user wrote), and the system prompt says so. The
languages are kept in ``ctx.state["translate"]`` as ``TurnLanguages`` for the rest of the
turn.

On output the answer is cut into sentences as it streams (``graft.translation.stream``) and
each sentence is translated back within ``timeout`` seconds; up to ``IN_FLIGHT`` sentences
are translated at once while the model goes on, and come out in order. Code blocks, text
without letters and sentences already in the user's language pass as they are.

A failure is never silent: when a translation fails or times out, the original text is
shown from there on, after a visible notice (once per turn), ``[translation unavailable:
REASON; showing the original text]``. When translating the input fails, the model gets the
original messages and the answer carries the same notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Final

from graft.context import Context
from graft.errors import GraftError
from graft.events import Event, TextDelta
from graft.messages import Message
from graft.middleware import Middleware
from graft.secrets import mask_secrets

from .backends import TranslationError
from .detect import adetect, has_letters
from .languages import english_name, same_language
from .service import NAME, TranslateOptions, Translator, options, translator_for
from .stream import Segment, SentenceSplitter

__all__ = ["IN_FLIGHT", "TranslateMiddleware", "TurnLanguages", "notice"]

log = logging.getLogger(__name__)

IN_FLIGHT: Final = 4
"""Sentences translated at once while the answer streams."""
_LOOK_BACK: Final = 5
"""User messages read, newest first, to find one that reveals the user's language."""
_NO_SPACES: Final = ("zh", "ja")
"""Languages written without spaces between sentences."""


@dataclass(slots=True)
class TurnLanguages:
    """The languages of this turn, in ``ctx.state["translate"]`` once the input was read."""

    user: str
    working: str
    options: TranslateOptions
    failure: str | None = None
    """Why translating the input failed, if it did: the answer then passes untranslated."""


def notice(reason: str, language: str) -> str:
    """The line shown where translation stopped, in English (and Chinese for ``zh`` users)."""
    reason = mask_secrets(reason)
    if language.startswith("zh"):
        return f"[翻译不可用，以下为原文 / translation unavailable: {reason}]\n"
    return f"[translation unavailable: {reason}; showing the original text]\n"


class TranslateMiddleware(Middleware):
    """Translates the user's messages for the model and its answer back, sentence by sentence."""

    name = NAME

    async def on_input(self, messages: list[Message], ctx: Context) -> list[Message]:
        """Detect the user's language; give the model the conversation in its own."""
        opts = options(ctx)
        user = await _user_language(messages)
        if user is None or same_language(user, opts.working_language):
            return messages
        languages = ctx.state[NAME] = TurnLanguages(user, opts.working_language, opts)
        try:
            async with translator_for(ctx, opts) as translator:
                translated = await _translate_messages(messages, translator, opts.working_language)
        except GraftError as exc:
            log.warning("turn %s: translating the input failed: %s", ctx.turn_id, exc.message)
            languages.failure = _brief(exc)
            return messages
        note = (
            f"The user writes in {english_name(user)}. Their messages reach you machine-"
            f"translated into {english_name(opts.working_language)}, and your answer is "
            f"machine-translated for them: answer in {english_name(opts.working_language)}."
        )
        if translated and translated[0].role == "system":
            head = translated[0]
            return [
                replace(head, content=f"{head.content or ''}\n\n{note}".strip()),
                *translated[1:],
            ]
        return [Message("system", note), *translated]

    def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        """Translate the answer back when the input was translated (or tried to be)."""
        languages = ctx.state.get(NAME)
        if not isinstance(languages, TurnLanguages):
            return events
        return _OutputTranslation(languages, ctx).run(events)


async def _user_language(messages: list[Message]) -> str | None:
    users = [m.content for m in messages if m.role == "user" and m.content]
    for content in reversed(users[-_LOOK_BACK:]):
        language = await adetect(content)
        if language is not None:
            return language
    return None


async def _translate_messages(
    messages: list[Message], translator: Translator, working: str
) -> list[Message]:
    """``messages`` with user and assistant text not in ``working`` translated into it."""
    by_language: dict[str, list[int]] = {}
    for index, message in enumerate(messages):
        if message.role not in ("user", "assistant") or not message.content:
            continue
        language = await adetect(message.content)
        if language is not None and not same_language(language, working):
            by_language.setdefault(language, []).append(index)
    out = list(messages)
    for language, indexes in by_language.items():
        texts = [messages[i].content or "" for i in indexes]
        done = await translator.translate(texts, working, language)
        for index, text in zip(indexes, done, strict=True):
            out[index] = replace(messages[index], content=text)
    return out


class _OutputTranslation:
    """The answer's stream, translated sentence by sentence, in order, a few at a time."""

    def __init__(self, languages: TurnLanguages, ctx: Context) -> None:
        self.languages = languages
        self.ctx = ctx
        self.failure = languages.failure
        self.noticed = False
        self.at_line_start = True
        self.translator: Translator | None = None
        self.queue: deque[tuple[str, asyncio.Task[list[str]] | None]] = deque()

    async def run(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        splitter = SentenceSplitter()
        if self.failure is None:
            try:
                self.translator = translator_for(self.ctx, self.languages.options)
            except GraftError as exc:
                log.warning("turn %s: no translator: %s", self.ctx.turn_id, exc.message)
                self.failure = _brief(exc)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    for segment in splitter.feed(event.text):
                        self._start(segment)
                    for text in await self._drain(keep=IN_FLIGHT - 1):
                        yield TextDelta(text)
                    continue
                for segment in splitter.flush():  # text runs keep their boundaries
                    self._start(segment)
                for text in await self._drain(keep=0):
                    yield TextDelta(text)
                yield event
            for segment in splitter.flush():
                self._start(segment)
            for text in await self._drain(keep=0):
                yield TextDelta(text)
        finally:
            for _, task in self.queue:
                _discard(task)
            if self.translator is not None:
                await self.translator.aclose()

    def _start(self, segment: Segment) -> None:
        """Queue a segment, starting its translation when it needs one."""
        task = None
        if not segment.code and self.failure is None and has_letters(segment.text):
            task = asyncio.ensure_future(self._translate(segment.text))
        self.queue.append((segment.text, task))

    async def _translate(self, text: str) -> list[str]:
        assert self.translator is not None
        languages = self.languages
        source = await adetect(text)
        if same_language(source, languages.user):
            return [text]  # the model answered in the user's language already
        done = await self.translator.translate([text], languages.user, source or languages.working)
        if languages.user.split("-")[0] in _NO_SPACES and not done[0].endswith("\n"):
            return [done[0].strip(" \t")]
        return done

    async def _drain(self, *, keep: int) -> list[str]:
        """Texts ready to show, in order, leaving at most ``keep`` sentences in flight.

        The head of the queue is awaited while more than ``keep`` wait; after that only
        sentences already translated come out.
        """
        out: list[str] = []
        while self.queue:
            original, task = self.queue[0]
            if task is not None and not task.done() and len(self.queue) <= keep:
                break
            self.queue.popleft()
            text = original
            if task is not None and self.failure is None:
                try:
                    text = (await task)[0]
                except GraftError as exc:
                    log.warning(
                        "turn %s: translating the answer failed: %s", self.ctx.turn_id, exc.message
                    )
                    self._fail(_brief(exc))
            out += self._shown(text)
        return out

    def _fail(self, reason: str) -> None:
        self.failure = reason
        for _, task in self.queue:
            _discard(task)

    def _shown(self, text: str) -> list[str]:
        """``text``, after the notice when translation has failed and none was shown yet."""
        out = []
        if self.failure is not None and not self.noticed:
            self.noticed = True
            line = notice(self.failure, self.languages.user)
            out.append(line if self.at_line_start else "\n" + line)
        out.append(text)
        self.at_line_start = text.endswith("\n")
        return out


def _brief(exc: GraftError) -> str:
    """What an end user is told of a failure (the log has the whole message)."""
    return exc.brief if isinstance(exc, TranslationError) else exc.message


def _discard(task: asyncio.Task[list[str]] | None) -> None:
    """Cancel a translation no longer wanted, or retrieve its error (so none is logged)."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
