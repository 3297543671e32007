/**
 * A voice room's media over WebRTC (docs/voice.md, "Rooms"): one participant's peer
 * connection to graft, made as a call's is (`RtcSession` of `lib/rtc`: one non-trickle offer
 * with the `events` channel, the microphone and a sendonly slot for the camera), plus
 * `SLOTS` `recvonly` video transceivers that graft fills with the others' cameras. The
 * microphone's transceiver brings back the mix of everyone else and the assistant.
 *
 * The offer goes to `POST /v1/voice/rooms/{room}/join` with our display name and the
 * assistant (which counts only when the join makes the room); the answer says who we are
 * (`participant_id`, our name as the room has it) and who is there. The server's `video`
 * events name each slot's transceiver by `mid`: `slotStream(mid)` is what that slot shows.
 * Leaving `DELETE`s our participant, as hanging up a call does.
 */
import { ApiError, api } from "../api/client";
import { type JoinAnswer, type RoomEvent, parseRoomEvent } from "./room";
import { RtcSession, type SessionHandlers, deleteOnServer } from "./rtc";

export const ROOMS_PATH = "/v1/voice/rooms";
/** Video slots offered: the most the server fills (`MAX_SLOTS` of graft.voice.room). */
export const SLOTS = 4;

export type RoomHandlers = SessionHandlers<RoomEvent>;

export interface JoinRequest {
  room: string;
  /** Our display name; null: the server's default (our user id). */
  name: string | null;
  assistant: string;
}

interface Answer {
  sdp: string;
  type: RTCSdpType;
  room: string;
  participant_id: string;
  name: string;
  assistant: string;
  participants: string[];
}

/** `/v1/voice/rooms/{room}` (the name encoded). */
export function roomPath(room: string): string {
  return `${ROOMS_PATH}/${encodeURIComponent(room)}`;
}

export class RoomCall extends RtcSession<RoomEvent> {
  /** The server's answer to our join, once it came. */
  joined: JoinAnswer | null = null;
  private readonly streams = new Map<string, MediaStream>();

  private constructor(mic: MediaStream, handlers: RoomHandlers) {
    super(mic, handlers, parseRoomEvent, SLOTS);
  }

  /** Join: send the offer, apply the answer. Throws `ApiError` with the server's message. */
  static async join(mic: MediaStream, request: JoinRequest, handlers: RoomHandlers): Promise<RoomCall> {
    return RtcSession.establish(
      mic,
      () => new RoomCall(mic, handlers),
      (call) => call.negotiate(request),
    );
  }

  private async negotiate(request: JoinRequest): Promise<void> {
    const offer = await this.offer();
    const body: Record<string, string> = { sdp: offer.sdp, type: "offer", assistant: request.assistant };
    if (request.name) body.name = request.name;
    const answer = await api<Answer>(`${roomPath(request.room)}/join`, { method: "POST", body });
    this.joined = {
      room: answer.room,
      participantId: answer.participant_id,
      name: answer.name,
      assistant: answer.assistant,
      participants: answer.participants,
    };
    if (this.closed) {
      const url = this.leaveUrl();
      if (url) void deleteOnServer(url);
      throw new ApiError("closed", 0, "closed");
    }
    await this.pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  }

  /** The video the slot with this `mid` receives (the camera the server put in it), or null. */
  slotStream(mid: string): MediaStream | null {
    const known = this.streams.get(mid);
    if (known) return known;
    const transceiver = this.pc.getTransceivers().find((t) => t.mid === mid && t.receiver.track.kind === "video");
    if (!transceiver) return null;
    const stream = new MediaStream([transceiver.receiver.track]);
    this.streams.set(mid, stream);
    return stream;
  }

  /** Leave the room (see `RtcSession.end`): a `DELETE` of our participant once we have its id. */
  leave(): void {
    this.end(this.leaveUrl());
  }

  private leaveUrl(): string | null {
    const joined = this.joined;
    if (!joined) return null;
    return `${roomPath(joined.room)}/participants/${encodeURIComponent(joined.participantId)}`;
  }
}
