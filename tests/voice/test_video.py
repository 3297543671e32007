"""The camera: ``FrameStore`` (latest frame per caller, lazy JPEG) and the ``look`` tool.

``look`` runs end to end: a turn whose scripted assistant calls it, the frame from the
store, and a real OpenAI-compatible server on 127.0.0.1 (aiohttp) as the vision model, which
checks that the request carries the picture as an image content part. The assistant is a
``FakeModel`` because its words are not under test; the vision model's request and answer
are. The frames are made with numpy and decoded back with PyAV (the voice extra).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web

from graft.context import Principal
from graft.default_plugins.look import NO_FRAME, CameraToolset
from graft.errors import ToolError
from graft.events import Event, ToolResult, TurnStarted
from graft.messages import Image, Message
from graft.runtime import Graft
from graft.store import open_store
from graft.testing import FakeModel, MemoryStore, call
from graft.turn import TurnRequest
from graft.voice.video import FrameStore, encode_jpeg

ALICE = Principal("alice")
BOB = Principal("bob")
ALICE_ELSEWHERE = Principal("alice", tenant="other")
DESCRIPTION = "The person is holding a red cup."


def picture(width: int, height: int, rgb: tuple[int, int, int] = (200, 30, 30)) -> Any:
    """A solid-colour RGB frame of the given size."""
    return np.full((height, width, 3), rgb, dtype=np.uint8)


def decode(jpeg: bytes) -> Any:
    """The JPEG back as an RGB array (PyAV's MJPEG decoder)."""
    assert jpeg[:3] == b"\xff\xd8\xff"
    (frame,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))
    return frame.to_ndarray(format="rgb24")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# --- FrameStore -------------------------------------------------------------------------


def test_the_latest_frame_wins_and_comes_back_as_a_jpeg_of_its_size() -> None:
    store = FrameStore()
    store.set_frame("conv_1", ALICE, picture(320, 240, (200, 30, 30)))
    store.set_frame("conv_1", ALICE, picture(640, 360, (30, 30, 200)))
    snapshot = store.latest("conv_1", ALICE)
    assert snapshot is not None
    assert (snapshot.width, snapshot.height) == (640, 360)
    pixels = decode(snapshot.jpeg)
    assert pixels.shape == (360, 640, 3)
    assert np.abs(pixels.mean(axis=(0, 1)) - (30, 30, 200)).max() < 6  # blue, not red
    assert len(store) == 1


def test_a_large_frame_is_scaled_to_768_on_its_long_side_and_a_small_one_is_not() -> None:
    jpeg, width, height = encode_jpeg(picture(1280, 720))
    assert (width, height) == (768, 432)
    assert decode(jpeg).shape == (432, 768, 3)
    jpeg, width, height = encode_jpeg(picture(480, 1000))  # portrait: height is the long side
    assert (width, height) == (368, 768)
    assert decode(jpeg).shape == (768, 368, 3)
    jpeg, width, height = encode_jpeg(picture(321, 241))
    assert (width, height) == (320, 240)  # never scaled up; even sides for 4:2:0
    assert decode(jpeg).shape == (240, 320, 3)


def test_an_av_video_frame_from_a_track_is_taken_as_it_is() -> None:
    # aiortc's decoder yields yuv420p frames.
    frame = av.VideoFrame.from_ndarray(picture(1920, 1080, (20, 180, 20)), format="rgb24")
    store = FrameStore()
    store.set_frame("conv_1", ALICE, frame.reformat(format="yuv420p"))
    snapshot = store.latest("conv_1", ALICE)
    assert snapshot is not None and (snapshot.width, snapshot.height) == (768, 432)
    assert np.abs(decode(snapshot.jpeg).mean(axis=(0, 1)) - (20, 180, 20)).max() < 6


def test_frames_are_encoded_only_when_asked_and_once_per_frame() -> None:
    store = FrameStore()
    for _ in range(30):  # a second of video: nothing is encoded
        store.set_frame("conv_1", ALICE, picture(640, 480))
    first = store.latest("conv_1", ALICE)
    second = store.latest("conv_1", ALICE)
    assert first is not None and second is not None
    assert first.jpeg is second.jpeg  # the cached picture, not a second encoding
    store.set_frame("conv_1", ALICE, picture(320, 240))
    third = store.latest("conv_1", ALICE)
    assert third is not None and third.jpeg is not first.jpeg and third.width == 320


def test_a_principal_sees_only_its_own_camera() -> None:
    store = FrameStore()
    store.set_frame("conv_a", ALICE, picture(64, 48))
    assert store.latest("conv_a", BOB) is None
    assert store.latest("conv_a", ALICE_ELSEWHERE) is None  # same name, other tenant
    assert store.latest("conv_b", ALICE) is None  # another conversation of hers
    # A room: one conversation, each participant's own camera.
    store.set_frame("conv_a", BOB, picture(32, 32))
    alice, bob = store.latest("conv_a", ALICE), store.latest("conv_a", BOB)
    assert alice is not None and bob is not None
    assert (alice.width, bob.width) == (64, 32)
    assert store.has_camera(ALICE) and store.has_camera(BOB)
    assert not store.has_camera(ALICE_ELSEWHERE)


def test_an_old_frame_is_marked_stale() -> None:
    clock = Clock()
    store = FrameStore(stale_after_s=10.0, clock=clock)
    store.set_frame("conv_1", ALICE, picture(64, 48))
    clock.now += 2.5
    fresh = store.latest("conv_1", ALICE)
    assert fresh is not None and not fresh.stale
    assert fresh.age_s == pytest.approx(2.5) and fresh.taken_at == 1_000.0
    clock.now += 10.0
    old = store.latest("conv_1", ALICE)
    assert old is not None and old.stale and old.age_s == pytest.approx(12.5)


def test_drop_forgets_a_call_or_one_participant() -> None:
    store = FrameStore()
    store.set_frame("room", ALICE, picture(32, 32))
    store.set_frame("room", BOB, picture(32, 32))
    store.set_frame("other", ALICE, picture(32, 32))
    store.drop("room", BOB)
    assert store.latest("room", BOB) is None and store.latest("room", ALICE) is not None
    store.drop("room")
    assert store.latest("room", ALICE) is None and len(store) == 1
    store.drop("other")
    assert len(store) == 0 and not store.has_camera(ALICE)


def test_bad_frames_are_refused_when_they_arrive() -> None:
    store = FrameStore()
    with pytest.raises(ValueError, match=r"shape \(height, width, 3\)"):
        store.set_frame("conv_1", ALICE, np.zeros((48, 64), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8 RGB array"):
        store.set_frame("conv_1", ALICE, np.zeros((48, 64, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="av.VideoFrame"):
        store.set_frame("conv_1", ALICE, b"not a frame")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conversation id"):
        store.set_frame("", ALICE, picture(32, 32))
    assert len(store) == 0


# --- images in messages -----------------------------------------------------------------


def test_a_message_with_an_image_becomes_openai_content_parts() -> None:
    message = Message("user", "What is this?", images=[Image(b"\xff\xd8\xffdata")])
    wire = message.to_openai()
    assert wire["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image_url",
            "image_url": {
                "url": "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xffdata").decode()
            },
        },
    ]
    assert Message("user", "plain").to_openai()["content"] == "plain"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_images_are_never_stored_with_a_conversation(kind: str, tmp_path: Any) -> None:
    store = MemoryStore() if kind == "memory" else open_store(f"sqlite:///{tmp_path / 'g.db'}")
    await store.start()
    try:
        message = Message("user", "look at this", images=[Image(b"\xff\xd8\xffsecret")])
        conversation_id, _ = await store.begin_turn(
            ALICE, assistant="default", model="m", conversation_id=None, new_messages=[message]
        )
        (stored,) = await store.load_history(conversation_id, ALICE)
        assert stored.content == "look at this" and stored.images == []
    finally:
        await store.close()


# --- the look tool ----------------------------------------------------------------------


class VisionUpstream:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 that records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.error = ""
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.status != 200:
            error = {"message": self.error, "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=self.status)
        user = body["messages"][-1]
        kinds = (
            [part["type"] for part in user["content"]] if isinstance(user["content"], list) else []
        )
        text = DESCRIPTION if "image_url" in kinds else "I see no image."
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 90, "completion_tokens": 8},
            }
        )


@pytest.fixture
async def upstream() -> AsyncIterator[VisionUpstream]:
    server = VisionUpstream()
    await server.start()
    yield server
    await server.stop()


async def run(graft: Graft, text: str, conversation_id: str | None = None) -> list[Event]:
    request = TurnRequest("default", [Message("user", text)], conversation_id)
    return [event async for event in graft.run_turn(request, graft.principal_for("alice"))]


def tool_result(events: list[Event]) -> ToolResult:
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    return result


def conversation_of(events: list[Event]) -> str:
    started = events[0]
    assert isinstance(started, TurnStarted)
    return started.conversation_id


def offered(model: FakeModel, index: int) -> set[str]:
    return {tool.name for tool in model.requests[index].tools}


async def vision_graft(
    started: Callable[..., Any], upstream: VisionUpstream, assistant: FakeModel, **voice: Any
) -> Graft:
    graft: Graft = await started(
        assistant,
        providers={"vision": {"base_url": upstream.base_url, "max_retries": 0}},
        voice={"vision_model": "vision:gpt-4o-mini", **voice},
    )
    return graft


async def test_look_shows_the_frame_to_the_vision_model_and_returns_its_answer(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    assistant = FakeModel(
        "Hello!",
        [call("look", question="What am I holding?")],
        "You are holding a red cup.",
    )
    graft = await vision_graft(started, upstream, assistant)
    conversation_id = conversation_of(await run(graft, "hi"))
    assert "look" not in offered(assistant, 0)  # no camera yet: a plain chat has no look
    alice = graft.principal_for("alice")
    graft.frames.set_frame(conversation_id, alice, picture(1280, 720))

    events = await run(graft, "What am I holding?", conversation_id)
    assert "look" in offered(assistant, 1)
    result = tool_result(events)
    assert not result.is_error and result.content == DESCRIPTION
    (request,) = upstream.requests
    assert request["model"] == "gpt-4o-mini" and not request.get("stream")
    text_part, image_part = request["messages"][-1]["content"]
    assert text_part == {"type": "text", "text": "What am I holding?"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert decode(base64.b64decode(url.split(",", 1)[1])).shape == (432, 768, 3)
    # The picture lived in that one request only: nothing of it is stored.
    history = await graft.store.load_history(conversation_id, alice)
    assert all(not m.images for m in history)
    (stored_result,) = [m.content or "" for m in history if m.role == "tool"]
    assert DESCRIPTION in stored_result
    assert "base64" not in json.dumps([m.to_openai() for m in history])


async def test_look_says_when_the_frame_is_stale(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    assistant = FakeModel([call("look", question="What do you see?")], "ok")
    graft = await vision_graft(started, upstream, assistant)
    clock = Clock()
    graft.frames = FrameStore(clock=clock)
    alice = graft.principal_for("alice")
    graft.frames.set_frame("conv_other", alice, picture(64, 48))  # her camera is on
    ctx = graft.context(alice, "default")
    ctx.frames, ctx.conversation_id = graft.frames, "conv_other"
    clock.now += 42
    answer = await graft.tools.resolve(ctx)
    text = await answer.call("look", {"question": "What do you see?"}, ctx)
    assert (
        text == f"(This camera frame is 42 s old: the camera may be frozen or off.) {DESCRIPTION}"
    )


async def test_look_without_a_frame_in_this_call_says_the_camera_is_off(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    assistant = FakeModel("Hello!", [call("look", question="What is this?")], "Sorry.")
    graft = await vision_graft(started, upstream, assistant)
    conversation_id = conversation_of(await run(graft, "hi"))
    # Her camera is on in another call, so look is offered, but this call has no frame.
    graft.frames.set_frame("conv_elsewhere", graft.principal_for("alice"), picture(32, 32))
    result = tool_result(await run(graft, "What is this?", conversation_id))
    assert result.is_error and result.content.endswith(NO_FRAME)
    assert upstream.requests == []


async def test_look_never_shows_another_users_camera(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    graft = await vision_graft(started, upstream, FakeModel("Hello, Bob."))
    bob = graft.principal_for("bob")
    request = TurnRequest("default", [Message("user", "hi")])
    bob_conversation = conversation_of([e async for e in graft.run_turn(request, bob)])
    graft.frames.set_frame(bob_conversation, bob, picture(64, 48))
    alice = graft.principal_for("alice")
    graft.frames.set_frame("conv_alice", alice, picture(64, 48))  # hers: look is offered
    ctx = graft.context(alice, "default")
    ctx.frames, ctx.conversation_id = graft.frames, bob_conversation  # she names Bob's call
    box = await graft.tools.resolve(ctx)
    with pytest.raises(ToolError) as refused:
        await box.call("look", {"question": "What is Bob holding?"}, ctx)
    assert refused.value.message == NO_FRAME
    assert upstream.requests == []


async def test_look_with_a_model_that_cannot_see_says_so(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    # The embedded SmolLM2 reads text only: refused before the model is even loaded.
    assistant = FakeModel([call("look", question="What is this?")], "Sorry.")
    graft = await vision_graft(started, upstream, assistant, vision_model="local:smollm2")
    alice = graft.principal_for("alice")
    graft.frames.set_frame("conv_1", alice, picture(64, 48))
    ctx = graft.context(alice, "default")
    ctx.frames, ctx.conversation_id = graft.frames, "conv_1"
    box = await graft.tools.resolve(ctx)
    with pytest.raises(ToolError) as refused:
        await box.call("look", {"question": "What is this?"}, ctx)
    assert refused.value.message.startswith(
        "the model 'local:smollm2' cannot see images; "
        "set voice.vision_model to a vision-capable model"
    )
    assert upstream.requests == []


async def test_look_with_an_endpoint_that_refuses_images_says_so(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    upstream.status = 400
    upstream.error = "Invalid content type. image_url is only supported by certain models."
    assistant = FakeModel("Hello!", [call("look", question="What is this?")], "I cannot see.")
    graft = await vision_graft(started, upstream, assistant)
    conversation_id = conversation_of(await run(graft, "hi"))
    graft.frames.set_frame(conversation_id, graft.principal_for("alice"), picture(64, 48))
    result = tool_result(await run(graft, "What is this?", conversation_id))
    assert result.is_error
    assert (
        "the model 'vision:gpt-4o-mini' cannot see images; set voice.vision_model to a "
        "vision-capable model" in result.content
    )
    assert "image_url is only supported by certain models" in result.content
    assert len(upstream.requests) == 1  # a 400 is not retried


async def test_look_uses_the_assistants_own_model_without_a_vision_model(
    started: Callable[..., Any], upstream: VisionUpstream
) -> None:
    graft: Graft = await started(
        FakeModel(),
        providers={"vision": {"base_url": upstream.base_url, "max_retries": 0}},
        assistants={"seer": {"model": "vision:gpt-4o"}},
    )
    alice = graft.principal_for("alice")
    graft.frames.set_frame("conv_1", alice, picture(64, 48))
    ctx = graft.context(alice, "seer")
    ctx.frames, ctx.conversation_id = graft.frames, "conv_1"
    box = await graft.tools.resolve(ctx)
    assert await box.call("look", {"question": "What is this?"}, ctx) == DESCRIPTION
    assert upstream.requests[0]["model"] == "gpt-4o"


async def test_look_is_listed_for_assistant_checks_and_hidden_in_chats_without_a_camera(
    started: Callable[..., Any],
) -> None:
    graft: Graft = await started(FakeModel())
    alice = graft.principal_for("alice")
    toolset = CameraToolset()
    probe = graft.context(alice, "default")  # no frame store: which tools exist at all
    assert [t.name for t in await toolset.list_tools(probe)] == ["look"]
    in_turn = graft.context(alice, "default")
    in_turn.frames = graft.frames
    assert await toolset.list_tools(in_turn) == []
    graft.frames.set_frame("conv_1", alice, picture(32, 32))
    assert [t.name for t in await toolset.list_tools(in_turn)] == ["look"]
    with pytest.raises(ToolError, match="camera is off"):
        await toolset.call_tool("look", {"question": "What?"}, probe)
    definition = (await toolset.list_tools(probe))[0]
    assert definition.read_only and "ctx" not in json.dumps(definition.parameters)
