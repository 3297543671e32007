/**
 * The call's signalling against a stand-in RTCPeerConnection (jsdom has none): what is
 * offered, what is POSTed and with which headers, how the answer, events, mute and hang-up
 * are handled. The real media path is tested end to end in tests/web/test_call.py.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../src/api/client";
import type { CallEvent } from "../src/lib/call";
import { CALLS_PATH, VoiceCall, gathered } from "../src/lib/rtc";
import { FakePC, type Sent, fakeMic, recordHandlers, stubSignalling } from "./fake_rtc";

let sent: Sent[];
let reply: () => Response;

beforeEach(() => {
  sent = [];
  reply = () => new Response(JSON.stringify({ sdp: "v=0 answer", type: "answer", call_id: "call_abc" }), { status: 201 });
  stubSignalling(sent, () => reply());
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const handlers = () => recordHandlers<CallEvent>();

describe("VoiceCall.connect", () => {
  it("offers the channel, the microphone and a video slot, once ICE is gathered", async () => {
    const { stream, track } = fakeMic();
    const call = await VoiceCall.connect(stream, { assistant: "support", conversationId: "conv_1" }, handlers().h);
    const pc = FakePC.last;
    expect(pc.config.iceServers).toEqual([]);
    expect(pc.channel?.label).toBe("events");
    expect(pc.transceivers.map((t) => [t.what === track ? "mic" : t.what, t.init.direction])).toEqual([
      ["mic", "sendrecv"],
      ["video", "sendonly"],
    ]);
    expect(sent).toHaveLength(1);
    const [post] = sent;
    expect(post?.url).toBe(CALLS_PATH);
    expect(post?.init.method).toBe("POST");
    expect(post?.init.credentials).toBe("same-origin");
    expect(post?.init.headers).toMatchObject({ "X-CSRF-Token": "tok123", "Content-Type": "application/json" });
    expect(JSON.parse(String(post?.init.body))).toEqual({
      sdp: "v=0 offer a=candidate:1",
      type: "offer",
      assistant: "support",
      conversation_id: "conv_1",
    });
    expect(pc.remote).toEqual({ type: "answer", sdp: "v=0 answer" });
    expect(call.callId).toBe("call_abc");
  });

  it("leaves the conversation out for a new one", async () => {
    await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, handlers().h);
    expect(JSON.parse(String(sent[0]?.init.body))).not.toHaveProperty("conversation_id");
  });

  it("throws the server's error and releases the microphone", async () => {
    reply = () =>
      new Response(JSON.stringify({ error: { message: "too many calls: try again later", code: "too_many_calls" } }), { status: 503 });
    const { stream, track } = fakeMic();
    const error = await VoiceCall.connect(stream, { assistant: "default", conversationId: null }, handlers().h).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).message).toBe("too many calls: try again later");
    expect((error as ApiError).status).toBe(503);
    expect((error as ApiError).code).toBe("too_many_calls");
    expect(track.stopped).toBe(true);
    expect(FakePC.last.closed).toBe(true);
  });
});

describe("a connected call", () => {
  it("passes the channel's events on, and drops what is not one", async () => {
    const { h, events } = handlers();
    await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, h);
    const channel = FakePC.last.channel;
    channel?.onmessage?.({ data: '{"type":"transcript","text":"hi"}' });
    channel?.onmessage?.({ data: "garbage" });
    channel?.onmessage?.({ data: '{"type":"delta","text":"Hello"}' });
    expect(events).toEqual([
      { type: "transcript", text: "hi" },
      { type: "delta", text: "Hello" },
    ]);
  });

  it("mutes by disabling the track, and turns the camera off without a new offer", async () => {
    const { stream, track } = fakeMic();
    const call = await VoiceCall.connect(stream, { assistant: "default", conversationId: null }, handlers().h);
    call.setMuted(true);
    expect(track.enabled).toBe(false);
    call.setMuted(false);
    expect(track.enabled).toBe(true);
    expect(await call.setCamera(false)).toBeNull();
    expect(FakePC.last.transceivers[1]?.sender.track).toBeNull();
    expect(sent).toHaveLength(1);
  });

  it("hangs up with DELETE, stops the microphone at once, then closes", async () => {
    const { stream, track } = fakeMic();
    const { h, closed } = handlers();
    const call = await VoiceCall.connect(stream, { assistant: "default", conversationId: null }, h);
    const pc = FakePC.last;
    if (pc.channel) pc.channel.readyState = "open";
    call.hangup();
    expect(track.stopped).toBe(true);
    expect(pc.closed).toBe(false); // not before the server has ended the call
    const del = sent[1];
    expect(del?.url).toBe(`${CALLS_PATH}/call_abc`);
    expect(del?.init).toMatchObject({ method: "DELETE", keepalive: true, credentials: "same-origin" });
    expect(del?.init.headers).toMatchObject({ "X-CSRF-Token": "tok123" });
    await vi.waitFor(() => expect(pc.closed).toBe(true));
    expect(pc.channel?.sent).toEqual([]); // the DELETE says it
    call.hangup(); // twice is once
    expect(sent).toHaveLength(2);
    expect(closed).toEqual([]); // we hung up: no "lost" news
  });

  it("closes when the server does not answer the DELETE", async () => {
    const call = await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, handlers().h);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      vi.stubGlobal("fetch", vi.fn(() => new Promise(() => undefined)));
      call.hangup();
      expect(FakePC.last.closed).toBe(false);
      vi.advanceTimersByTime(3000);
      expect(FakePC.last.closed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("only closes when the server has hung up", async () => {
    const { h, events } = handlers();
    const call = await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, h);
    const pc = FakePC.last;
    if (pc.channel) pc.channel.readyState = "open";
    pc.channel?.onmessage?.({ data: '{"type":"hangup","reason":"max_duration"}' });
    expect(events).toEqual([{ type: "hangup", reason: "max_duration" }]);
    call.hangup();
    expect(pc.channel?.sent).toEqual([]);
    expect(sent).toHaveLength(1); // no DELETE
    expect(pc.closed).toBe(true);
  });

  it("tells when the connection fails or the server closes the channel", async () => {
    const first = handlers();
    await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, first.h);
    FakePC.last.fail();
    expect(first.closed).toEqual([true]);
    expect(FakePC.last.closed).toBe(true);

    const second = handlers();
    await VoiceCall.connect(fakeMic().stream, { assistant: "default", conversationId: null }, second.h);
    FakePC.last.channel?.onclose?.();
    expect(second.closed).toEqual([false]);
  });
});

describe("gathered", () => {
  it("gives up waiting after the timeout", async () => {
    const pc = new FakePC({});
    const started = Date.now();
    await gathered(pc as unknown as RTCPeerConnection, 30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    pc.iceGatheringState = "complete";
    await gathered(pc as unknown as RTCPeerConnection, 10_000); // at once
  });
});
