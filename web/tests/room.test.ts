import { describe, expect, it } from "vitest";
import {
  type JoinAnswer,
  MAX_LINES,
  type RoomAction,
  type RoomEvent,
  type RoomState,
  displayNameProblem,
  filledSlots,
  isOver,
  parseRoomEvent,
  reduceRoom,
  roomEndNote,
  roomNameProblem,
  startRoom,
} from "../src/lib/room";

const ev = (event: RoomEvent): RoomAction => ({ type: "event", event });

function run(actions: RoomAction[], state: RoomState = startRoom("standup", "default")): RoomState {
  return actions.reduce(reduceRoom, state);
}

const ANSWER: JoinAnswer = { room: "standup", participantId: "part_1", name: "Ann", assistant: "helper", participants: ["Bob", "Ann"] };

/** Ann, in the room with Bob, the models ready. */
function inRoom(): RoomState {
  return run([{ type: "connecting" }, { type: "joined", answer: ANSWER }, ev({ type: "ready", call_id: "call_1", conversation_id: null })]);
}

/** The transcript as [kind, who, text] (a notice's text is what happened). */
const lines = (state: RoomState): Array<[string, string, string]> => state.lines.map((l) => [l.kind, l.who, l.kind === "notice" ? (l.notice ?? "") : l.text]);

describe("room names", () => {
  it("are checked as the server checks them", () => {
    expect(roomNameProblem("standup")).toBeNull();
    expect(roomNameProblem("0-team_a")).toBeNull();
    expect(roomNameProblem("a".repeat(64))).toBeNull();
    expect(roomNameProblem("")).toBe("room.nameMissing");
    expect(roomNameProblem("a".repeat(65))).toBe("room.nameInvalid");
    expect(roomNameProblem("Standup")).toBe("room.nameInvalid");
    expect(roomNameProblem("-standup")).toBe("room.nameInvalid");
    expect(roomNameProblem("_x")).toBe("room.nameInvalid");
    expect(roomNameProblem("stand up")).toBe("room.nameInvalid");
    expect(roomNameProblem("café")).toBe("room.nameInvalid");
    expect(roomNameProblem("a/b")).toBe("room.nameInvalid");
  });

  it("and display names too: blank is the server's default, long or with a newline is not", () => {
    expect(displayNameProblem("")).toBeNull();
    expect(displayNameProblem("  Ann  ")).toBeNull();
    expect(displayNameProblem(`  ${"x".repeat(64)}  `)).toBeNull();
    expect(displayNameProblem("x".repeat(65))).toBe("room.displayNameLong");
    expect(displayNameProblem("Ann\nBob")).toBe("room.displayNameControl");
    expect(displayNameProblem("Ann\u007f")).toBe("room.displayNameControl");
  });
});

describe("joining", () => {
  it("goes from the microphone to joining to in the room", () => {
    let state = startRoom("standup", "default");
    expect(state).toMatchObject({ status: "starting", room: "standup", assistant: "default", participants: [] });
    state = reduceRoom(state, { type: "connecting" });
    expect(state.status).toBe("connecting");
    state = reduceRoom(state, { type: "joined", answer: ANSWER });
    // The room's assistant is the one its maker chose; the server may have renamed us.
    expect(state).toMatchObject({ status: "connecting", name: "Ann", participantId: "part_1", assistant: "helper", participants: ["Bob", "Ann"] });
    state = reduceRoom(state, ev({ type: "ready", call_id: "call_1", conversation_id: "conv_1" }));
    expect(state).toMatchObject({ status: "live", conversationId: "conv_1" });
  });

  it("can fail before joining, with the server's message", () => {
    const state = run([{ type: "connecting" }, { type: "failed", error: { message: "room 'standup' is full: 6 people at most", code: "server" } }]);
    expect(state).toMatchObject({ status: "failed", error: { message: "room 'standup' is full: 6 people at most" } });
    expect(isOver(state)).toBe(true);
  });
});

describe("participants", () => {
  it("follow the joined and left events, with a line in the transcript for the others", () => {
    let state = reduceRoom(inRoom(), ev({ type: "joined", participant: "Ann", participants: ["Bob", "Ann"] }));
    expect(state.lines).toEqual([]); // our own arrival is not news to us
    state = run(
      [ev({ type: "joined", participant: "Cy", participants: ["Bob", "Ann", "Cy"] }), ev({ type: "left", participant: "Bob", participants: ["Ann", "Cy"] })],
      state,
    );
    expect(state.participants).toEqual(["Ann", "Cy"]);
    expect(lines(state)).toEqual([
      ["notice", "Cy", "joined"],
      ["notice", "Bob", "left"],
    ]);
  });

  it("who leaves mid-answer closes their answer", () => {
    const state = run(
      [
        ev({ type: "transcript", text: "Hey assistant, a story?", participant: "Bob", speaker: "Bob" }),
        ev({ type: "delta", text: "Once", participant: "Bob" }),
        ev({ type: "left", participant: "Bob", participants: ["Ann"] }),
      ],
      inRoom(),
    );
    expect(state.lines.find((l) => l.kind === "assistant")?.done).toBe(true);
  });
});

describe("video slots", () => {
  it("are what the last video event says; empty slots are not shown", () => {
    let state = reduceRoom(
      inRoom(),
      ev({
        type: "video",
        slots: [
          { index: 0, mid: "2", participant: "Bob" },
          { index: 1, mid: "3", participant: null },
          { index: 2, mid: "4", participant: "Cy" },
          { index: 3, mid: "5", participant: null },
        ],
      }),
    );
    expect(filledSlots(state).map((s) => [s.mid, s.participant])).toEqual([
      ["2", "Bob"],
      ["4", "Cy"],
    ]);
    state = reduceRoom(state, ev({ type: "video", slots: [{ index: 0, mid: "2", participant: null }, { index: 2, mid: "4", participant: "Cy" }] }));
    expect(filledSlots(state).map((s) => s.participant)).toEqual(["Cy"]);
  });

  it("without a mid are not shown", () => {
    const state = reduceRoom(inRoom(), ev({ type: "video", slots: [{ index: 0, mid: null, participant: "Bob" }] }));
    expect(filledSlots(state)).toEqual([]);
  });
});

describe("the transcript", () => {
  it("has everyone's words with their names, and the assistant's answer to whoever asked", () => {
    const state = run(
      [
        ev({ type: "transcript", text: "I think the meeting went well.", language: "en", participant: "Ann", speaker: "Ann" }),
        ev({ type: "transcript", text: "Tell me, assistant, what is two plus three?", language: "en", participant: "Bob", speaker: "Bob" }),
        ev({ type: "delta", text: "Two plus three ", participant: "Bob" }),
        ev({ type: "audio", rate: 22050, sentence: "Two plus three is five.", participant: "Bob" }),
        ev({ type: "delta", text: "is five.", participant: "Bob" }),
        ev({ type: "turn_done", speech: true, interrupted: false, conversation_id: "conv_bob", participant: "Bob" }),
      ],
      inRoom(),
    );
    expect(lines(state)).toEqual([
      ["person", "Ann", "I think the meeting went well."],
      ["person", "Bob", "Tell me, assistant, what is two plus three?"],
      ["assistant", "Bob", "Two plus three is five."],
    ]);
    expect(state.lines[0]?.language).toBe("en");
    expect(state.lines.every((l) => l.done)).toBe(true);
    // Bob's conversation is Bob's: ours is not known yet.
    expect(state.conversationId).toBeNull();
  });

  it("keeps two answers apart when two people ask at once", () => {
    const state = run(
      [
        ev({ type: "transcript", text: "Assistant, the time?", participant: "Bob" }),
        ev({ type: "transcript", text: "Assistant, the weather?", participant: "Ann" }),
        ev({ type: "delta", text: "Noon", participant: "Bob" }),
        ev({ type: "delta", text: "Sunny", participant: "Ann" }),
        ev({ type: "delta", text: ".", participant: "Bob" }),
        ev({ type: "turn_done", conversation_id: "conv_ann", participant: "Ann" }),
        ev({ type: "delta", text: " Exactly.", participant: "Bob" }),
      ],
      inRoom(),
    );
    expect(lines(state)).toEqual([
      ["person", "Bob", "Assistant, the time?"],
      ["person", "Ann", "Assistant, the weather?"],
      ["assistant", "Bob", "Noon. Exactly."],
      ["assistant", "Ann", "Sunny"],
    ]);
    expect(state.lines.map((l) => Boolean(l.done))).toEqual([true, true, false, true]);
    expect(state.conversationId).toBe("conv_ann"); // our own turn's conversation
  });

  it("writes the greeting from its sentences, and marks a cut answer", () => {
    const state = run(
      [
        ev({ type: "audio", sentence: "Hello!", source: "greeting", participant: "Ann" }),
        ev({ type: "audio", sentence: "How can I help?", source: "greeting", participant: "Ann" }),
        ev({ type: "turn_done", participant: "Ann" }),
        ev({ type: "transcript", text: "Assistant, tell me a story", participant: "Bob" }),
        ev({ type: "delta", text: "Once upon", participant: "Bob" }),
        ev({ type: "barge_in", participant: "Bob" }),
        ev({ type: "turn_done", interrupted: true, participant: "Bob" }), // late: changes nothing
      ],
      inRoom(),
    );
    expect(lines(state)).toEqual([
      ["assistant", "Ann", "Hello! How can I help?"],
      ["person", "Bob", "Assistant, tell me a story"],
      ["assistant", "Bob", "Once upon"],
    ]);
    expect(state.lines[2]).toMatchObject({ done: true, interrupted: true });
  });

  it("shows the tool in use, and errors, and keeps at most MAX_LINES lines", () => {
    let state = run([ev({ type: "tool", name: "calculator", status: "started", participant: "Bob" })], inRoom());
    expect(state.tool).toBe("calculator");
    state = run([ev({ type: "tool", name: "calculator", status: "done", participant: "Bob" }), ev({ type: "error", message: "the model failed", code: "model_error" })], state);
    expect(state).toMatchObject({ tool: null, error: { message: "the model failed", code: "model_error" }, status: "live" });
    const many = Array.from({ length: MAX_LINES + 5 }, (_, i) => ev({ type: "transcript", text: `line ${i}`, participant: "Bob" }));
    state = run(many, state);
    expect(state.lines).toHaveLength(MAX_LINES);
    expect(state.lines[MAX_LINES - 1]?.text).toBe(`line ${MAX_LINES + 4}`);
  });
});

describe("leaving", () => {
  it("ends when we leave, or the server takes us out, and says why", () => {
    const taken = run([ev({ type: "delta", text: "Hi", participant: "Bob" }), ev({ type: "hangup", reason: "deleted_by_admin" })], inRoom());
    expect(taken).toMatchObject({ status: "ended", endReason: "deleted_by_admin" });
    expect(taken.lines[0]?.done).toBe(true);
    expect(roomEndNote(taken.endReason)).toBe("room.end.admin");
    expect(reduceRoom(taken, ev({ type: "ready" }))).toBe(taken);

    const left = run([{ type: "camera", on: true }, { type: "ended" }], inRoom());
    expect(left).toMatchObject({ status: "ended", camera: false, endReason: null });
    expect(roomEndNote(left.endReason)).toBeNull();
    expect(roomEndNote("max_duration")).toBe("room.end.maxDuration");
    expect(roomEndNote("shutdown")).toBe("room.end.shutdown");
    expect(roomEndNote("something new")).toBe("room.end.server");

    const lost = reduceRoom(inRoom(), { type: "failed", error: { message: "lost", code: "connection" } });
    expect(lost.status).toBe("failed");
    expect(reduceRoom(lost, { type: "ended" })).toBe(lost);
  });

  it("mutes and turns the camera on while in", () => {
    expect(run([{ type: "muted", muted: true }, { type: "camera", on: true }], inRoom())).toMatchObject({ muted: true, camera: true });
  });
});

describe("parseRoomEvent", () => {
  it("reads the room's own events and the sessions' events with whose they are", () => {
    expect(parseRoomEvent('{"type":"joined","participant":"Bob","participants":["Ann","Bob"]}')).toEqual({
      type: "joined",
      participant: "Bob",
      participants: ["Ann", "Bob"],
    });
    expect(parseRoomEvent('{"type":"video","slots":[{"index":0,"mid":"2","participant":null}]}')).toEqual({
      type: "video",
      slots: [{ index: 0, mid: "2", participant: null }],
    });
    expect(parseRoomEvent('{"type":"transcript","text":"hi","language":"en","speaker":"Bob","participant":"Bob"}')).toEqual({
      type: "transcript",
      text: "hi",
      language: "en",
      speaker: "Bob",
      participant: "Bob",
    });
    expect(parseRoomEvent('{"type":"error","message":"no","code":"x","participant":"Ann"}')).toEqual({ type: "error", message: "no", code: "x", participant: "Ann" });
  });

  it("drops what is not one", () => {
    expect(parseRoomEvent("garbage")).toBeNull();
    expect(parseRoomEvent(42)).toBeNull();
    expect(parseRoomEvent('{"type":"joined","participant":"Bob"}')).toBeNull();
    expect(parseRoomEvent('{"type":"left","participant":"Bob","participants":[1]}')).toBeNull();
    expect(parseRoomEvent('{"type":"video","slots":[{"mid":"2"}]}')).toBeNull();
    expect(parseRoomEvent('{"type":"video"}')).toBeNull();
    expect(parseRoomEvent('{"type":"transcript"}')).toBeNull();
    expect(parseRoomEvent('{"type":"nope"}')).toBeNull();
  });
});
