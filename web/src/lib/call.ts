/**
 * A voice call's state, as the call panel shows it: where the call is (asking for the
 * microphone, connecting, listening, thinking, speaking, ended, failed), the transcript of
 * both sides turn by turn, and the last error. `reduceCall` folds the connection's steps and
 * the server's data-channel events (docs/voice.md: ready, transcript, delta, audio, tool,
 * barge_in, turn_done, error, and hangup when the server ends the call) into it. Pure functions only; `lib/rtc` moves the media.
 * What a room's state shares with it is in `lib/voicestate`.
 */
import { type CallError, type VoiceAction, type VoiceState, type EndNote, endNoteOf, hungUp, isOver, jsonObject, reduceVoice } from "./voicestate";

export { type CallError, isOver };

export type CallStatus =
  | "starting" // asking for the microphone
  | "connecting" // offer sent, waiting for the server to be ready
  | "listening"
  | "thinking" // the caller's words were heard, no speech back yet
  | "speaking"
  | "ended"
  | "failed";

/** What the server sends on the `events` data channel. */
export type CallEvent =
  | { type: "ready"; call_id?: string; conversation_id?: string | null }
  | { type: "transcript"; text: string; language?: string }
  | { type: "delta"; text: string }
  | { type: "audio"; rate?: number; sentence?: string; source?: "greeting" | "filler" }
  | { type: "tool"; name: string; status: "started" | "done" }
  | { type: "barge_in" }
  | {
      type: "turn_done";
      speech?: boolean;
      conversation_id?: string | null;
      interrupted?: boolean;
      timings?: Record<string, number | null>;
    }
  | { type: "error"; message: string; code?: string | null }
  | { type: "hangup"; reason?: string };

export interface CallTurn {
  key: string;
  /** What the caller said; null for what the assistant says unasked (the greeting). */
  user: string | null;
  language?: string;
  /** The answer so far (its streamed text, or the sentences spoken for an unasked turn). */
  assistant: string;
  /** The caller spoke over the answer, which was cut off there. */
  interrupted?: boolean;
  done?: boolean;
}

export interface CallState extends VoiceState {
  status: CallStatus;
  callId: string | null;
  turns: CallTurn[];
  /** The assistant's voice is being heard (its level, or a sentence just announced). */
  audible: boolean;
}

export type CallAction = VoiceAction | { type: "answered"; callId: string } | { type: "event"; event: CallEvent } | { type: "audible"; on: boolean };

/** The state of a call that has just been asked for (the microphone comes first). */
export function startCall(conversationId: string | null = null): CallState {
  return {
    status: "starting",
    callId: null,
    conversationId,
    turns: [],
    tool: null,
    error: null,
    endReason: null,
    muted: false,
    camera: false,
    audible: false,
  };
}

/** Whether media flows: the server has answered and the call is not over. */
export function isLive(state: CallState): boolean {
  return state.status === "listening" || state.status === "thinking" || state.status === "speaking";
}

let counter = 0;
function turnKey(): string {
  counter += 1;
  return `ct${counter}`;
}

/** The turn being answered: the last one when it is not done yet. */
function openTurn(turns: CallTurn[]): CallTurn | undefined {
  const last = turns[turns.length - 1];
  return last && !last.done ? last : undefined;
}

function withLast(turns: CallTurn[], change: (turn: CallTurn) => CallTurn): CallTurn[] {
  const last = turns[turns.length - 1];
  return last ? [...turns.slice(0, -1), change(last)] : turns;
}

function closeOpen(turns: CallTurn[]): CallTurn[] {
  return openTurn(turns) ? withLast(turns, (turn) => ({ ...turn, done: true })) : turns;
}

/** A call that is over: nothing is heard any more, and what was being said is done. */
function finish(state: CallState): CallState {
  return { ...state, audible: false, turns: closeOpen(state.turns) };
}

/** Join the spoken sentences of an unasked turn with one space. */
function joinSentence(text: string, sentence: string): string {
  const piece = sentence.trim();
  if (!piece) return text;
  return text ? `${text} ${piece}` : piece;
}

/**
 * A live call's status from what is going on: the assistant heard → speaking; a question
 * being answered → thinking; else listening. Other statuses are kept.
 */
function settle(state: CallState): CallState {
  if (!isLive(state)) return state;
  const open = openTurn(state.turns);
  const status: CallStatus = state.audible ? "speaking" : open && open.user !== null ? "thinking" : "listening";
  return status === state.status ? state : { ...state, status };
}

function applyEvent(state: CallState, event: CallEvent): CallState {
  switch (event.type) {
    case "ready":
      return {
        ...state,
        status: state.status === "connecting" || state.status === "starting" ? "listening" : state.status,
        callId: event.call_id ?? state.callId,
        conversationId: event.conversation_id ?? state.conversationId,
      };
    case "transcript": {
      // A new question ends whatever was being said before it. A question cut off before
      // any answer is being heard again, joined to what followed: this one replaces it.
      let turns = closeOpen(state.turns);
      const last = turns[turns.length - 1];
      if (last && last.user !== null && last.interrupted && !last.assistant) turns = turns.slice(0, -1);
      const turn: CallTurn = { key: turnKey(), user: event.text, assistant: "" };
      if (event.language) turn.language = event.language;
      return { ...state, tool: null, turns: [...turns, turn] };
    }
    case "delta": {
      const open = openTurn(state.turns);
      const turns = open
        ? withLast(state.turns, (turn) => ({ ...turn, assistant: turn.assistant + event.text }))
        : [...state.turns, { key: turnKey(), user: null, assistant: event.text }];
      return { ...state, turns };
    }
    case "audio": {
      let turns = state.turns;
      const sentence = event.sentence ?? "";
      if (event.source === "greeting") {
        // Said unasked: its sentences are its text (an answer's text comes as deltas, and a
        // filler such as "One moment." is only heard).
        const open = openTurn(turns);
        turns =
          open && open.user === null
            ? withLast(turns, (turn) => ({ ...turn, assistant: joinSentence(turn.assistant, sentence) }))
            : [...closeOpen(turns), { key: turnKey(), user: null, assistant: joinSentence("", sentence) }];
      }
      return { ...state, audible: true, turns };
    }
    case "tool":
      return { ...state, tool: event.status === "started" ? event.name : null };
    case "barge_in": {
      // The server has dropped the speech still queued: what plays out now is its last bit.
      const open = openTurn(state.turns);
      const turns = open ? withLast(state.turns, (turn) => ({ ...turn, interrupted: true, done: true })) : state.turns;
      return { ...state, tool: null, audible: false, turns };
    }
    case "turn_done": {
      const turns = openTurn(state.turns)
        ? withLast(state.turns, (turn) => ({ ...turn, done: true, ...(event.interrupted ? { interrupted: true } : {}) }))
        : state.turns;
      return { ...state, tool: null, turns, conversationId: event.conversation_id ?? state.conversationId };
    }
    case "error":
      return { ...state, error: { message: event.message, code: event.code ?? null } };
    case "hangup":
      return hungUp(state, event.reason, finish);
    default:
      return state;
  }
}

/** The state after `action`. A call that is over stays as it is. */
export function reduceCall(state: CallState, action: CallAction): CallState {
  if (isOver(state)) return state;
  switch (action.type) {
    case "answered":
      return { ...state, callId: action.callId };
    case "event":
      return settle(applyEvent(state, action.event));
    case "audible":
      return action.on === state.audible ? state : settle({ ...state, audible: action.on });
    default:
      return reduceVoice(state, action, finish);
  }
}

/**
 * Whether the assistant is heard, from its voice's level sampled now and then: loud enough
 * turns it on at once, `quietMs` below the threshold turns it off (pauses between words and
 * sentences don't flicker).
 */
export class AudibleGate {
  private on = false;
  private quietSince: number | null = null;

  constructor(
    private readonly threshold = 0.01,
    private readonly quietMs = 600,
  ) {}

  /** Whether the voice is heard after a sample of `level` (0..1) at `now` ms. */
  update(level: number, now: number): boolean {
    if (level >= this.threshold) {
      this.on = true;
      this.quietSince = null;
    } else if (this.on) {
      this.quietSince ??= now;
      if (now - this.quietSince >= this.quietMs) {
        this.on = false;
        this.quietSince = null;
      }
    }
    return this.on;
  }
}

/** A data-channel message as an event, or null when it is not one (not JSON, no type). */
export function parseEvent(data: unknown): CallEvent | null {
  const fields = jsonObject(data);
  if (!fields || typeof fields.type !== "string") return null;
  const value = fields as unknown as CallEvent;
  switch (fields.type) {
    case "transcript":
    case "delta":
      return typeof fields.text === "string" ? value : null;
    case "tool":
      return typeof fields.name === "string" ? value : null;
    case "error":
      return { type: "error", message: typeof fields.message === "string" ? fields.message : "error", code: typeof fields.code === "string" ? fields.code : null };
    case "ready":
    case "audio":
    case "barge_in":
    case "turn_done":
    case "hangup":
      return value;
    default:
      return null;
  }
}

/** The message key saying why the server hung up (its `hangup` event's reason). */
export function endNote(reason: string | null): `call.end.${EndNote}` | null {
  return endNoteOf("call", reason);
}

/** Why the microphone or camera could not be had, as a message key of the UI. */
export type MediaProblem = "call.micDenied" | "call.micMissing" | "call.micBusy" | "call.insecure" | "call.micFailed";

/** The message key for a `getUserMedia` failure (a DOMException's name). */
export function mediaProblem(name: string | undefined): MediaProblem {
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "call.micDenied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "call.micMissing";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "call.micBusy";
    case "insecure":
      return "call.insecure";
    default:
      return "call.micFailed";
  }
}
