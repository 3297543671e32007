/**
 * A room's signalling against the stand-in RTCPeerConnection: what is offered (the channel,
 * the microphone, the camera's slot and the others' video slots), what is POSTed where, how
 * slots are found by mid, and how leaving tells the server. The real media path is tested
 * end to end in tests/web/test_room.py.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "../src/api/client";
import type { RoomEvent } from "../src/lib/room";
import { ROOMS_PATH, RoomCall, SLOTS } from "../src/lib/roomrtc";
import { FakePC, type Sent, fakeMic, recordHandlers, stubSignalling } from "./fake_rtc";

class FakeStream {
  constructor(readonly tracks: unknown[]) {}
}

let sent: Sent[];
let reply: () => Response;

const ANSWER = {
  sdp: "v=0 answer",
  type: "answer",
  room: "standup",
  participant_id: "part_ab12",
  name: "Ann (2)",
  assistant: "helper",
  participants: ["Ann", "Ann (2)"],
};

beforeEach(() => {
  sent = [];
  reply = () => new Response(JSON.stringify(ANSWER), { status: 201 });
  stubSignalling(sent, () => reply());
  vi.stubGlobal("MediaStream", FakeStream);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const handlers = () => recordHandlers<RoomEvent>();

describe("RoomCall.join", () => {
  it("offers the channel, the microphone, the camera's slot and four slots for the others", async () => {
    const { stream, track } = fakeMic();
    const call = await RoomCall.join(stream, { room: "standup", name: "Ann", assistant: "helper" }, handlers().h);
    const pc = FakePC.last;
    expect(pc.config.iceServers).toEqual([]);
    expect(pc.channel?.label).toBe("events");
    expect(pc.transceivers.map((t) => [t.what === track ? "mic" : t.what, t.init.direction])).toEqual([
      ["mic", "sendrecv"],
      ["video", "sendonly"],
      ...Array.from({ length: SLOTS }, () => ["video", "recvonly"]),
    ]);
    expect(SLOTS).toBe(4);
    expect(sent).toHaveLength(1);
    const [post] = sent;
    expect(post?.url).toBe(`${ROOMS_PATH}/standup/join`);
    expect(post?.init.method).toBe("POST");
    expect(post?.init.credentials).toBe("same-origin");
    expect(post?.init.headers).toMatchObject({ "X-CSRF-Token": "tok123", "Content-Type": "application/json" });
    expect(JSON.parse(String(post?.init.body))).toEqual({ sdp: "v=0 offer a=candidate:1", type: "offer", name: "Ann", assistant: "helper" });
    expect(pc.remote).toEqual({ type: "answer", sdp: "v=0 answer" });
    expect(call.joined).toEqual({ room: "standup", participantId: "part_ab12", name: "Ann (2)", assistant: "helper", participants: ["Ann", "Ann (2)"] });
  });

  it("leaves the name out for the server's default", async () => {
    await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, handlers().h);
    expect(JSON.parse(String(sent[0]?.init.body))).not.toHaveProperty("name");
  });

  it("throws the server's refusal and releases the microphone", async () => {
    reply = () => new Response(JSON.stringify({ error: { message: "room 'standup' is full: 6 people at most", code: "room_full" } }), { status: 409 });
    const { stream, track } = fakeMic();
    const error = await RoomCall.join(stream, { room: "standup", name: null, assistant: "default" }, handlers().h).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(409);
    expect((error as ApiError).code).toBe("room_full");
    expect(track.stopped).toBe(true);
    expect(FakePC.last.closed).toBe(true);
  });
});

describe("in a room", () => {
  it("passes the room's events on, and drops what is not one", async () => {
    const { h, events } = handlers();
    await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, h);
    const channel = FakePC.last.channel;
    channel?.onmessage?.({ data: '{"type":"joined","participant":"Bob","participants":["Ann","Bob"]}' });
    channel?.onmessage?.({ data: '{"type":"video","slots":"nope"}' });
    channel?.onmessage?.({ data: '{"type":"delta","text":"Hi","participant":"Bob"}' });
    expect(events).toEqual([
      { type: "joined", participant: "Bob", participants: ["Ann", "Bob"] },
      { type: "delta", text: "Hi", participant: "Bob" },
    ]);
  });

  it("finds a slot's video by the mid the server names", async () => {
    const call = await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, handlers().h);
    const slot = FakePC.last.transceivers[2];
    const stream = call.slotStream("2") as unknown as FakeStream;
    expect(stream.tracks).toEqual([slot?.receiver.track]);
    expect(call.slotStream("2")).toBe(stream); // the same stream each render
    expect(call.slotStream("0")).toBeNull(); // the microphone's: not a video
    expect(call.slotStream("9")).toBeNull();
  });

  it("turns the camera on in its own slot, not in the others'", async () => {
    const camera = { kind: "video", stop: vi.fn() };
    vi.stubGlobal("navigator", { mediaDevices: { getUserMedia: async () => ({ getVideoTracks: () => [camera], getTracks: () => [camera] }) } });
    const call = await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, handlers().h);
    await call.setCamera(true);
    expect(FakePC.last.transceivers.map((t) => t.sender.track === camera)).toEqual([false, true, false, false, false, false]);
  });

  it("leaves with DELETE of its participant, stops the microphone at once, then closes", async () => {
    const { stream, track } = fakeMic();
    const { h, closed } = handlers();
    const call = await RoomCall.join(stream, { room: "standup", name: null, assistant: "default" }, h);
    const pc = FakePC.last;
    if (pc.channel) pc.channel.readyState = "open";
    call.leave();
    expect(track.stopped).toBe(true);
    const del = sent[1];
    expect(del?.url).toBe(`${ROOMS_PATH}/standup/participants/part_ab12`);
    expect(del?.init).toMatchObject({ method: "DELETE", keepalive: true, credentials: "same-origin" });
    expect(del?.init.headers).toMatchObject({ "X-CSRF-Token": "tok123" });
    await vi.waitFor(() => expect(pc.closed).toBe(true));
    expect(pc.channel?.sent).toEqual([]);
    call.leave();
    expect(sent).toHaveLength(2);
    expect(closed).toEqual([]);
  });

  it("says nothing back when the server took it out", async () => {
    const { h, events } = handlers();
    const call = await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, h);
    const pc = FakePC.last;
    if (pc.channel) pc.channel.readyState = "open";
    pc.channel?.onmessage?.({ data: '{"type":"hangup","reason":"deleted_by_admin"}' });
    expect(events).toEqual([{ type: "hangup", reason: "deleted_by_admin" }]);
    call.leave();
    expect(pc.channel?.sent).toEqual([]);
    expect(sent).toHaveLength(1);
    expect(pc.closed).toBe(true);
  });

  it("tells when the connection fails", async () => {
    const { h, closed } = handlers();
    await RoomCall.join(fakeMic().stream, { room: "standup", name: null, assistant: "default" }, h);
    FakePC.last.fail();
    expect(closed).toEqual([true]);
  });
});
