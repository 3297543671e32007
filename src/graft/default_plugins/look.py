"""The ``look`` tool: a vision model answers a question about the caller's camera frame.

In a video call the transport keeps the caller's newest frame in ``Context.frames``
(``graft.voice.video``). ``look`` takes the frame of the turn's conversation for the turn's
principal, so a tool call can only ever see the camera of the person it runs for, and sends
it with the question, as an image content part, to the vision model: ``voice.vision_model``,
or the assistant's own model. The picture exists only in that one request; it is never
stored with the conversation. The answer comes back as the tool's result, which the
assistant speaks in its own words.

A model that cannot see (the embedded ``local:`` model, or an endpoint that answers 400 to
the image) makes ``look`` fail with a ``ToolError`` that says so and names the setting to
change, so the assistant can tell the caller instead of guessing. ``CameraToolset`` offers
the tool only while the principal has a camera on in some call: text chats do not see it.
"""

from __future__ import annotations

from typing import Annotated, Final

import anyio.to_thread
from pydantic import Field

from graft.context import Context
from graft.errors import ImagesUnsupported, ModelError, ModelUnavailable, ToolError
from graft.messages import Image, Message
from graft.models.base import ModelRequest, TextChunk
from graft.tools.base import ToolDef
from graft.tools.function import FunctionToolset, tool
from graft.voice.video import Snapshot

__all__ = ["CameraToolset", "look"]

NO_FRAME: Final = "no camera frame: the caller's camera is off"
_MAX_ANSWER_TOKENS: Final = 300
_REFUSED_STATUSES: Final = frozenset({400, 415, 422})
"""Upstream answers to an image that mean the model cannot take it (OpenAI says 400)."""
_INSTRUCTIONS: Final = (
    "You see one still frame from the camera of a person on a call with an assistant. "
    "Answer the question about it in one to three short sentences, in the language of the "
    "question. Describe only what the picture shows; if it does not show the answer, say "
    "what it does show."
)


# read_only: it changes nothing, and the frame goes only to the configured vision model; a
# side-effecting tool would need approval after untrusted content, which no call can give.
@tool(read_only=True)
async def look(
    question: Annotated[str, Field(min_length=1, max_length=500)],
    ctx: Context,
) -> str:
    """Look through the caller's camera and answer a question about what it shows now.

    Use it when the caller asks about something they show you or about their surroundings.

    Args:
        question: What to find out from the picture, e.g. 'What am I holding?'.
        ctx: The turn (graft passes it; the model does not see it).
    """
    snapshot = await _snapshot(ctx)
    model_id = ctx.settings.voice.vision_model or ctx.assistant.model or ctx.settings.model
    answer = await _ask(ctx, model_id, snapshot, question)
    if snapshot.stale:
        return (
            f"(This camera frame is {snapshot.age_s:.0f} s old: the camera may be frozen "
            f"or off.) {answer}"
        )
    return answer


class CameraToolset(FunctionToolset):
    """``look``, offered while the turn's principal has a camera on in one of its calls.

    A context without a frame store (one that only asks which tools exist, such as an
    assistant check) lists it, so that assistants can name ``look`` in their ``tools``.
    """

    def __init__(self) -> None:
        super().__init__([look], name="camera")

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """``look``, unless the turn knows the principal's cameras and none is on."""
        if ctx.frames is not None and not ctx.frames.has_camera(ctx.principal):
            return []
        return await super().list_tools(ctx)


async def _snapshot(ctx: Context) -> Snapshot:
    """The principal's newest frame in this conversation, or ``ToolError`` if none."""
    frames, conversation_id = ctx.frames, ctx.conversation_id
    if frames is None or conversation_id is None:
        raise ToolError(NO_FRAME)
    snapshot = await anyio.to_thread.run_sync(frames.latest, conversation_id, ctx.principal)
    if snapshot is None:
        raise ToolError(NO_FRAME)
    return snapshot


async def _ask(ctx: Context, model_id: str, snapshot: Snapshot, question: str) -> str:
    """The vision model's answer to ``question`` about the frame; ``ToolError`` on failure."""
    if ctx.get_model is None:
        raise ToolError("look cannot reach a model here (no model registry in this context)")
    cannot_see = (
        f"the model {model_id!r} cannot see images; "
        "set voice.vision_model to a vision-capable model"
    )
    request = ModelRequest(
        [
            Message("system", _INSTRUCTIONS),
            Message("user", question, images=[Image(snapshot.jpeg, "image/jpeg")]),
        ],
        max_tokens=_MAX_ANSWER_TOKENS,
        stream=False,
    )
    pieces: list[str] = []
    try:
        model = ctx.get_model(model_id)
        async for chunk in model.stream(request):
            if isinstance(chunk, TextChunk):
                pieces.append(chunk.text)
    except ImagesUnsupported as exc:
        raise ToolError(f"{cannot_see} ({exc.message})") from None
    except ModelUnavailable as exc:
        raise ToolError(f"the vision model {model_id!r} is unavailable: {exc.message}") from None
    except ModelError as exc:
        if exc.upstream_status in _REFUSED_STATUSES:
            raise ToolError(f"{cannot_see} ({exc.message})") from None
        raise ToolError(f"the vision model {model_id!r} failed: {exc.message}") from None
    answer = "".join(pieces).strip()
    if not answer:
        raise ToolError(f"the vision model {model_id!r} gave no answer")
    return answer
