import { describe, expect, it } from "vitest";
import {
  AudibleGate,
  type CallAction,
  type CallEvent,
  type CallState,
  endNote,
  isLive,
  isOver,
  mediaProblem,
  parseEvent,
  reduceCall,
  startCall,
} from "../src/lib/call";

const ev = (event: CallEvent): CallAction => ({ type: "event", event });

function run(actions: CallAction[], state: CallState = startCall()): CallState {
  return actions.reduce(reduceCall, state);
}

/** A call that has connected and is listening. */
function ready(conversationId: string | null = null): CallState {
  return run([{ type: "connecting" }, { type: "answered", callId: "call_1" }, ev({ type: "ready", call_id: "call_1", conversation_id: conversationId })]);
}

const said = (state: CallState): Array<[string | null, string, boolean]> =>
  state.turns.map((t) => [t.user, t.assistant, Boolean(t.interrupted)]);

describe("the call's states", () => {
  it("goes from the microphone to connecting to listening", () => {
    let state = startCall("conv_1");
    expect(state.status).toBe("starting");
    expect(state.conversationId).toBe("conv_1");
    state = reduceCall(state, { type: "connecting" });
    expect(state.status).toBe("connecting");
    expect(isLive(state)).toBe(false);
    state = reduceCall(state, { type: "answered", callId: "call_9" });
    expect(state).toMatchObject({ status: "connecting", callId: "call_9" });
    state = reduceCall(state, ev({ type: "ready", call_id: "call_9", conversation_id: null }));
    expect(state.status).toBe("listening");
    expect(state.conversationId).toBe("conv_1"); // a null id from the server keeps ours
    expect(isLive(state)).toBe(true);
  });

  it("thinks after a question, speaks while heard, listens after the turn", () => {
    let state = reduceCall(ready(), ev({ type: "transcript", text: "What is two plus three?", language: "en" }));
    expect(state.status).toBe("thinking");
    state = reduceCall(state, ev({ type: "delta", text: "Five." }));
    expect(state.status).toBe("thinking");
    state = reduceCall(state, ev({ type: "audio", rate: 48000, sentence: "Five." }));
    expect(state.status).toBe("speaking");
    state = reduceCall(state, ev({ type: "turn_done", speech: true, conversation_id: "conv_2" }));
    expect(state.status).toBe("speaking"); // still playing out
    expect(state.conversationId).toBe("conv_2");
    state = reduceCall(state, { type: "audible", on: false });
    expect(state.status).toBe("listening");
  });

  it("goes back to thinking when a filler has been said and the answer is not ready", () => {
    let state = run([ev({ type: "transcript", text: "Mail my boss" }), ev({ type: "tool", name: "send_email", status: "started" })], ready());
    expect(state.tool).toBe("send_email");
    state = run([ev({ type: "audio", sentence: "One moment.", source: "filler" }), { type: "audible", on: true }], state);
    expect(state.status).toBe("speaking");
    state = reduceCall(state, { type: "audible", on: false });
    expect(state.status).toBe("thinking");
    state = reduceCall(state, ev({ type: "tool", name: "send_email", status: "done" }));
    expect(state.tool).toBeNull();
    expect(said(state)).toEqual([["Mail my boss", "", false]]); // the filler is heard, not written
  });

  it("listens again at once on barge-in", () => {
    const state = run(
      [ev({ type: "transcript", text: "Tell me a story" }), ev({ type: "delta", text: "Once upon" }), ev({ type: "audio", sentence: "Once upon a time." }), ev({ type: "barge_in" })],
      ready(),
    );
    expect(state.status).toBe("listening");
    expect(state.audible).toBe(false);
    expect(said(state)).toEqual([["Tell me a story", "Once upon", true]]);
    // What the server sends late for the cancelled turn does not reopen it.
    const after = reduceCall(state, ev({ type: "turn_done", interrupted: true, conversation_id: "c" }));
    expect(after.turns).toHaveLength(1);
    expect(after.conversationId).toBe("c");
  });

  it("ends and fails for good", () => {
    const ended = run([ev({ type: "transcript", text: "hi" }), { type: "camera", on: true }, { type: "ended" }], ready());
    expect(ended.status).toBe("ended");
    expect(ended.camera).toBe(false);
    expect(ended.turns[0]?.done).toBe(true);
    expect(isOver(ended)).toBe(true);
    expect(reduceCall(ended, ev({ type: "ready" }))).toBe(ended);
    expect(reduceCall(ended, { type: "failed", error: { message: "x" } })).toBe(ended);

    const failed = reduceCall(ready(), { type: "failed", error: { message: "The call's connection was lost.", code: "connection" } });
    expect(failed.status).toBe("failed");
    expect(failed.error?.message).toBe("The call's connection was lost.");
    expect(reduceCall(failed, { type: "ended" })).toBe(failed);
  });

  it("ends when the server hangs up, and says why", () => {
    const state = run([ev({ type: "transcript", text: "hi" }), ev({ type: "hangup", reason: "max_duration" })], ready());
    expect(state).toMatchObject({ status: "ended", endReason: "max_duration" });
    expect(state.turns[0]?.done).toBe(true);
    expect(endNote(state.endReason)).toBe("call.end.maxDuration");
    expect(endNote(run([ev({ type: "hangup" })], ready()).endReason)).toBe("call.end.server");
    expect(endNote("shutdown")).toBe("call.end.shutdown");
    expect(endNote(null)).toBeNull();
    expect(endNote(run([{ type: "ended" }], ready()).endReason)).toBeNull(); // we hung up
  });

  it("can fail before it connects, with the server's message", () => {
    const state = run([{ type: "connecting" }, { type: "failed", error: { message: "too many calls", code: "server" } }]);
    expect(state).toMatchObject({ status: "failed", error: { message: "too many calls" } });
  });

  it("keeps a turn's error and goes on", () => {
    const state = run([ev({ type: "transcript", text: "hi" }), ev({ type: "error", message: "the model failed", code: "model_error" })], ready());
    expect(state.error).toEqual({ message: "the model failed", code: "model_error" });
    expect(state.status).toBe("thinking");
    expect(reduceCall(state, ev({ type: "turn_done" })).status).toBe("listening");
  });

  it("mutes and turns the camera on", () => {
    const state = run([{ type: "muted", muted: true }, { type: "camera", on: true }], ready());
    expect(state).toMatchObject({ muted: true, camera: true, status: "listening" });
  });
});

describe("the transcript", () => {
  it("keeps each turn's question and streamed answer", () => {
    const state = run(
      [
        ev({ type: "transcript", text: "What is two plus three?", language: "en" }),
        ev({ type: "delta", text: "Two plus three " }),
        ev({ type: "delta", text: "is five." }),
        ev({ type: "turn_done", speech: true }),
        ev({ type: "transcript", text: "谢谢", language: "zh" }),
        ev({ type: "delta", text: "不客气。" }),
      ],
      ready(),
    );
    expect(said(state)).toEqual([
      ["What is two plus three?", "Two plus three is five.", false],
      ["谢谢", "不客气。", false],
    ]);
    expect(state.turns.map((t) => [t.language, Boolean(t.done)])).toEqual([
      ["en", true],
      ["zh", false],
    ]);
    expect(new Set(state.turns.map((t) => t.key)).size).toBe(2);
  });

  it("writes the greeting from its spoken sentences, and a new question closes it", () => {
    const state = run(
      [
        ev({ type: "audio", rate: 22050, sentence: "Hello!", source: "greeting" }),
        ev({ type: "audio", rate: 22050, sentence: " How can I help? ", source: "greeting" }),
        { type: "audible", on: false },
        ev({ type: "transcript", text: "Hi there" }),
      ],
      ready(),
    );
    expect(said(state)).toEqual([
      [null, "Hello! How can I help?", false],
      ["Hi there", "", false],
    ]);
    expect(state.turns[0]?.done).toBe(true);
    expect(state.status).toBe("thinking");
  });

  it("listens, not thinks, once the greeting has been said", () => {
    const state = run([ev({ type: "audio", sentence: "Hello!", source: "greeting" }), { type: "audible", on: true }, { type: "audible", on: false }], ready());
    expect(state.status).toBe("listening");
  });

  it("writes an answer from its deltas, not from its spoken sentences", () => {
    const state = run(
      [ev({ type: "transcript", text: "Hi" }), ev({ type: "audio", sentence: "Hello there." }), ev({ type: "delta", text: "Hello there." })],
      ready(),
    );
    expect(said(state)).toEqual([["Hi", "Hello there.", false]]);
  });

  it("replaces a question cut off before its answer with the question heard again", () => {
    const state = run(
      [
        ev({ type: "transcript", text: "What is" }),
        ev({ type: "turn_done", speech: true, interrupted: true }),
        ev({ type: "transcript", text: "What is two plus three?" }),
        ev({ type: "delta", text: "Five." }),
      ],
      ready(),
    );
    expect(said(state)).toEqual([["What is two plus three?", "Five.", false]]);
    // An interrupted answer stays: it was heard.
    const kept = run([ev({ type: "barge_in" }), ev({ type: "transcript", text: "Stop" })], state);
    expect(said(kept)).toEqual([
      ["What is two plus three?", "Five.", true],
      ["Stop", "", false],
    ]);
  });

  it("takes a delta without a question as the assistant's own turn", () => {
    const state = run([ev({ type: "delta", text: "Hi" }), ev({ type: "delta", text: "!" })], ready());
    expect(said(state)).toEqual([[null, "Hi!", false]]);
  });

  it("ignores a turn with no speech in it", () => {
    const state = reduceCall(ready(), ev({ type: "turn_done", speech: false }));
    expect(state.turns).toEqual([]);
    expect(state.status).toBe("listening");
  });
});

describe("parseEvent", () => {
  it("reads the server's events", () => {
    expect(parseEvent('{"type":"transcript","text":"hi","language":"en"}')).toEqual({ type: "transcript", text: "hi", language: "en" });
    expect(parseEvent('{"type":"ready","call_id":"call_1","conversation_id":null}')).toMatchObject({ type: "ready" });
    expect(parseEvent('{"type":"error","message":"nope","code":"voice_unavailable"}')).toEqual({ type: "error", message: "nope", code: "voice_unavailable" });
    expect(parseEvent('{"type":"error"}')).toEqual({ type: "error", message: "error", code: null });
    expect(parseEvent('{"type":"hangup","reason":"shutdown"}')).toEqual({ type: "hangup", reason: "shutdown" });
  });

  it("drops what is not an event", () => {
    for (const data of ["not json", "42", "null", '{"text":"x"}', '{"type":"delta"}', '{"type":"tool"}', '{"type":"what"}']) {
      expect(parseEvent(data), data).toBeNull();
    }
    expect(parseEvent(new ArrayBuffer(2))).toBeNull();
  });
});

describe("mediaProblem", () => {
  it("names why the microphone could not be had", () => {
    expect(mediaProblem("NotAllowedError")).toBe("call.micDenied");
    expect(mediaProblem("NotFoundError")).toBe("call.micMissing");
    expect(mediaProblem("NotReadableError")).toBe("call.micBusy");
    expect(mediaProblem("insecure")).toBe("call.insecure");
    expect(mediaProblem("TypeError")).toBe("call.micFailed");
    expect(mediaProblem(undefined)).toBe("call.micFailed");
  });
});

describe("AudibleGate", () => {
  it("turns on at once and off after a quiet spell", () => {
    const gate = new AudibleGate(0.01, 600);
    expect(gate.update(0, 0)).toBe(false);
    expect(gate.update(0.2, 100)).toBe(true);
    expect(gate.update(0.001, 200)).toBe(true); // a pause between words
    expect(gate.update(0.3, 500)).toBe(true);
    expect(gate.update(0, 600)).toBe(true);
    expect(gate.update(0, 1100)).toBe(true);
    expect(gate.update(0, 1200)).toBe(false);
    expect(gate.update(0, 5000)).toBe(false);
  });
});
