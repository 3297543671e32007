/**
 * What a voice call's state (`lib/call`) and a voice room's (`lib/room`) have alike: the
 * fields both keep (status, tool, error, end reason, conversation, mute, camera), the
 * actions both panels dispatch for the connection and the devices, reading a data-channel
 * message as a JSON object, and the message key of the server's reason for ending. Kept in
 * one place so that a call and a room cannot drift apart on them. Pure functions only.
 */

export interface CallError {
  message: string;
  code?: string | null;
}

/** The fields a call's state and a room's share. */
export interface VoiceState {
  status: string;
  /** The tool the assistant is using now. */
  tool: string | null;
  /** The last error: fatal when `status` is "failed", else a turn that went wrong. */
  error: CallError | null;
  /** Why the server ended it (`max_duration`, `deleted_by_admin`...), when it did. */
  endReason: string | null;
  conversationId: string | null;
  muted: boolean;
  camera: boolean;
}

/** The actions a call and a room both take: the connection's steps and the devices. */
export type VoiceAction =
  | { type: "connecting" }
  | { type: "failed"; error: CallError }
  | { type: "ended" }
  | { type: "muted"; muted: boolean }
  | { type: "camera"; on: boolean };

/** Whether it is over (ended or failed): nothing changes it any more. */
export function isOver(state: { status: string }): boolean {
  return state.status === "ended" || state.status === "failed";
}

/**
 * The state after one of the shared actions. `finish` closes what was being said (and
 * whatever else stops) once the call or room has ended or failed.
 */
export function reduceVoice<S extends VoiceState>(state: S, action: VoiceAction, finish: (state: S) => S): S {
  switch (action.type) {
    case "connecting":
      return { ...state, status: "connecting", error: null };
    case "failed":
      return finish({ ...state, status: "failed", tool: null, error: action.error, camera: false });
    case "ended":
      return finish({ ...state, status: "ended", tool: null, camera: false });
    case "muted":
      return { ...state, muted: action.muted };
    case "camera":
      return { ...state, camera: action.on };
    default:
      return state;
  }
}

/** The state after the server's `hangup` event (see `reduceVoice` for `finish`). */
export function hungUp<S extends VoiceState>(state: S, reason: string | undefined, finish: (state: S) => S): S {
  return finish({ ...state, status: "ended", tool: null, camera: false, endReason: reason ?? "server" });
}

/** A data-channel message's JSON object, or null when it is not one. */
export function jsonObject(data: unknown): Record<string, unknown> | null {
  if (typeof data !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : null;
}

/** How the server's reasons for ending are named in the message keys. */
export type EndNote = "maxDuration" | "shutdown" | "admin" | "noConnection" | "server";

/** The message key (under `prefix`) saying why the server ended it (its `hangup` event's reason). */
export function endNoteOf<P extends string>(prefix: P, reason: string | null): `${P}.end.${EndNote}` | null {
  return reason === null ? null : `${prefix}.end.${END_NOTES.get(reason) ?? "server"}`;
}

const END_NOTES = new Map<string, EndNote>([
  ["max_duration", "maxDuration"],
  ["shutdown", "shutdown"],
  ["deleted_by_admin", "admin"],
  ["no_connection", "noConnection"],
]);
