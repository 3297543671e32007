/**
 * A voice room's state, as the room panel shows it (docs/voice.md, "Rooms"): where we are
 * (asking for the microphone, joining, in the room, left, failed), who is in the room, which
 * of the others' cameras are in our video slots, and the transcript of everyone: what each
 * person said (with their name) and the assistant's answers to whoever asked, with a line
 * when someone joins or leaves. `reduceRoom` folds the join's answer and the server's
 * data-channel events (each with `participant`, the display name of the session that sent
 * it) into it. The room's name is checked here as the server checks it. Pure functions
 * only; `lib/roomrtc` moves the media; what a call's state shares with it is in `lib/voicestate`.
 */
import { type CallEvent, parseEvent } from "./call";
import { type EndNote, type VoiceAction, type VoiceState, endNoteOf, hungUp, isOver, jsonObject, reduceVoice } from "./voicestate";

export { isOver };

/** What a room may be called (the server's rule): a-z, 0-9, `_` and `-`, 64 at most. */
export const ROOM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** The longest display name. */
export const MAX_NAME_CHARS = 64;
/** Lines of transcript kept (older ones scroll away). */
export const MAX_LINES = 300;

export type RoomStatus =
  | "starting" // asking for the microphone
  | "connecting" // offer sent, waiting for the server
  | "live"
  | "ended"
  | "failed";

/** One of our video slots: whose camera (a display name, or null: empty) is on the transceiver `mid`. */
export interface RoomSlot {
  index: number;
  mid: string | null;
  participant: string | null;
}

/** A call event of one of the room's sessions: `participant` is whose. */
export type SessionEvent = CallEvent & { participant?: string; speaker?: string };

/** What the server sends on a room participant's `events` data channel. */
export type RoomEvent =
  | SessionEvent
  | { type: "joined" | "left"; participant: string; participants: string[] }
  | { type: "video"; slots: RoomSlot[] };

export interface RoomLine {
  key: string;
  /** person: what `who` said; assistant: its answer to `who`; notice: `who` joined or left. */
  kind: "person" | "assistant" | "notice";
  who: string;
  text: string;
  notice?: "joined" | "left";
  language?: string;
  /** An answer that is over (a person's line is always done). */
  done?: boolean;
  interrupted?: boolean;
}

/** The join's answer (201). */
export interface JoinAnswer {
  room: string;
  participantId: string;
  name: string;
  assistant: string;
  participants: string[];
}

export interface RoomState extends VoiceState {
  status: RoomStatus;
  room: string;
  /** Our display name in the room, once the server has said it. */
  name: string | null;
  participantId: string | null;
  /** The room's assistant (the one who made the room chose it). */
  assistant: string;
  participants: string[];
  slots: RoomSlot[];
  lines: RoomLine[];
  /** Our own conversation in the room (our questions and their answers), once known. */
  conversationId: string | null;
}

export type RoomAction = VoiceAction | { type: "joined"; answer: JoinAnswer } | { type: "event"; event: RoomEvent };

/** Why a room's name is refused (a message key), or null when it is a good one. */
export function roomNameProblem(room: string): "room.nameMissing" | "room.nameInvalid" | null {
  if (!room) return "room.nameMissing";
  return ROOM_NAME.test(room) ? null : "room.nameInvalid";
}

/** Why a display name is refused (a message key), or null; blank is fine (the server picks one). */
export function displayNameProblem(name: string): "room.displayNameLong" | "room.displayNameControl" | null {
  if (/[\u0000-\u001f\u007f]/.test(name)) return "room.displayNameControl";
  return name.trim().length > MAX_NAME_CHARS ? "room.displayNameLong" : null;
}

/** The state of a room we have just asked to join (the microphone comes first). */
export function startRoom(room: string, assistant: string): RoomState {
  return {
    status: "starting",
    room,
    name: null,
    participantId: null,
    assistant,
    participants: [],
    slots: [],
    lines: [],
    tool: null,
    error: null,
    endReason: null,
    conversationId: null,
    muted: false,
    camera: false,
  };
}

/** The slots that show someone's camera, in slot order. */
export function filledSlots(state: RoomState): Array<RoomSlot & { mid: string; participant: string }> {
  return state.slots.filter((s): s is RoomSlot & { mid: string; participant: string } => Boolean(s.mid && s.participant));
}

let counter = 0;
function lineKey(): string {
  counter += 1;
  return `rl${counter}`;
}

/** The index of `who`'s answer being given, or -1. */
function openAnswer(lines: RoomLine[], who: string): number {
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const line = lines[i];
    if (line && line.kind === "assistant" && line.who === who) return line.done ? -1 : i;
  }
  return -1;
}

function changeAt(lines: RoomLine[], index: number, change: (line: RoomLine) => RoomLine): RoomLine[] {
  const line = lines[index];
  if (!line) return lines;
  const out = lines.slice();
  out[index] = change(line);
  return out;
}

function closeAnswer(lines: RoomLine[], who: string, interrupted = false): RoomLine[] {
  const open = openAnswer(lines, who);
  return open < 0 ? lines : changeAt(lines, open, (line) => ({ ...line, done: true, ...(interrupted ? { interrupted: true } : {}) }));
}

function closeAll(lines: RoomLine[]): RoomLine[] {
  return lines.some((l) => l.kind === "assistant" && !l.done) ? lines.map((l) => (l.kind === "assistant" && !l.done ? { ...l, done: true } : l)) : lines;
}

/** A room we are out of: every answer being given is done. */
function finish(state: RoomState): RoomState {
  return { ...state, lines: closeAll(state.lines) };
}

function push(lines: RoomLine[], line: Omit<RoomLine, "key">): RoomLine[] {
  const out = [...lines, { key: lineKey(), ...line }];
  return out.length > MAX_LINES ? out.slice(out.length - MAX_LINES) : out;
}

/** Add `text` to `who`'s answer being given, or start one. */
function addToAnswer(lines: RoomLine[], who: string, text: string, sentence = false): RoomLine[] {
  const open = openAnswer(lines, who);
  if (open < 0) return push(lines, { kind: "assistant", who, text: sentence ? text.trim() : text });
  return changeAt(lines, open, (line) => {
    if (!sentence) return { ...line, text: line.text + text };
    const piece = text.trim();
    return { ...line, text: line.text && piece ? `${line.text} ${piece}` : line.text || piece };
  });
}

function applyEvent(state: RoomState, event: RoomEvent): RoomState {
  switch (event.type) {
    case "joined":
    case "left": {
      const lines = event.participant === state.name ? state.lines : push(state.lines, { kind: "notice", who: event.participant, text: "", notice: event.type });
      return { ...state, participants: event.participants.slice(), lines: event.type === "left" ? closeAnswer(lines, event.participant) : lines };
    }
    case "video":
      return { ...state, slots: event.slots.map((s) => ({ index: s.index, mid: s.mid ?? null, participant: s.participant ?? null })) };
    case "ready":
      return {
        ...state,
        status: state.status === "connecting" || state.status === "starting" ? "live" : state.status,
        conversationId: event.conversation_id ?? state.conversationId,
      };
    case "error":
      return { ...state, error: { message: event.message, code: event.code ?? null } };
    case "hangup":
      return hungUp(state, event.reason, finish);
    default:
      break;
  }
  // An event of one of the room's sessions: whose is `participant` (ours when it is missing).
  const who = event.participant ?? state.name ?? "";
  switch (event.type) {
    case "transcript": {
      const line: Omit<RoomLine, "key"> = { kind: "person", who: event.speaker ?? who, text: event.text, done: true };
      if (event.language) line.language = event.language;
      return { ...state, lines: push(closeAnswer(state.lines, who), line) };
    }
    case "delta":
      return { ...state, lines: addToAnswer(state.lines, who, event.text) };
    case "audio":
      // A greeting is said unasked: its sentences are its text (an answer's text comes as deltas).
      return event.source === "greeting" ? { ...state, lines: addToAnswer(state.lines, who, event.sentence ?? "", true) } : state;
    case "tool":
      return { ...state, tool: event.status === "started" ? event.name : null };
    case "barge_in":
      return { ...state, tool: null, lines: closeAnswer(state.lines, who, true) };
    case "turn_done": {
      const mine = who === state.name && event.conversation_id;
      return {
        ...state,
        tool: null,
        lines: closeAnswer(state.lines, who, Boolean(event.interrupted)),
        conversationId: mine ? (event.conversation_id ?? null) : state.conversationId,
      };
    }
    default:
      return state;
  }
}

/** The state after `action`. A room we are out of stays as it is. */
export function reduceRoom(state: RoomState, action: RoomAction): RoomState {
  if (isOver(state)) return state;
  switch (action.type) {
    case "joined": {
      const { answer } = action;
      return {
        ...state,
        room: answer.room,
        name: answer.name,
        participantId: answer.participantId,
        assistant: answer.assistant,
        participants: answer.participants.slice(),
      };
    }
    case "event":
      return applyEvent(state, action.event);
    default:
      return reduceVoice(state, action, finish);
  }
}

function isSlot(value: unknown): value is RoomSlot {
  if (typeof value !== "object" || value === null) return false;
  const slot = value as Record<string, unknown>;
  return (
    typeof slot.index === "number" &&
    (slot.mid === null || slot.mid === undefined || typeof slot.mid === "string") &&
    (slot.participant === null || slot.participant === undefined || typeof slot.participant === "string")
  );
}

/** A data-channel message as a room event, or null when it is not one. */
export function parseRoomEvent(data: unknown): RoomEvent | null {
  const fields = jsonObject(data);
  if (!fields) return null;
  const value = fields as unknown as RoomEvent;
  switch (fields.type) {
    case "joined":
    case "left":
      return typeof fields.participant === "string" && Array.isArray(fields.participants) && fields.participants.every((p) => typeof p === "string")
        ? value
        : null;
    case "video":
      return Array.isArray(fields.slots) && fields.slots.every(isSlot) ? value : null;
    default: {
      const event = parseEvent(data);
      if (!event) return null;
      const tagged: SessionEvent = { ...event };
      if (typeof fields.participant === "string") tagged.participant = fields.participant;
      if (typeof fields.speaker === "string") tagged.speaker = fields.speaker;
      return tagged;
    }
  }
}

/** The message key saying why the server took us out of the room (its `hangup` event's reason). */
export function roomEndNote(reason: string | null): `room.end.${EndNote}` | null {
  return endNoteOf("room", reason);
}
