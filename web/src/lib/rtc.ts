/**
 * A voice call's media over WebRTC: the microphone goes up, the assistant's voice comes down,
 * JSON events come over the `events` data channel (docs/voice.md).
 *
 * The offer is made once, so it carries everything the call may use: the data channel, the
 * microphone (sendrecv: the answer comes back on it) and a video transceiver (sendonly, no
 * track until the camera is turned on, then `replaceTrack`, which needs no new offer). There
 * are no ICE servers (a LAN or this machine): the offer is sent once ICE gathering is
 * complete, with all its candidates (no trickle), to `POST /v1/voice/calls` with the same
 * session cookie and CSRF header as any other call of the UI; the answer is the reply.
 * Hanging up `DELETE`s the call; the server hanging up says `{"type":"hangup"}` to us on
 * the channel, with a reason.
 *
 * `RtcSession` is what a call and a room's participant (`lib/roomrtc`) share: the peer
 * connection, the channel, the microphone, the camera's slot, muting, and ending with a
 * `DELETE` (or a `hangup` on the channel) before closing.
 */
import { ApiError, api, requestHeaders } from "../api/client";
import { type CallEvent, parseEvent } from "./call";

export const CALLS_PATH = "/v1/voice/calls";

/** The microphone as the speech recognizer likes it: no echo, but neither gain nor denoise. */
export const MIC_CONSTRAINTS: MediaTrackConstraints = {
  echoCancellation: true,
  noiseSuppression: false,
  autoGainControl: false,
};

const GATHER_TIMEOUT_MS = 5000;

interface Answer {
  sdp: string;
  type: RTCSdpType;
  call_id: string;
}

export interface SessionHandlers<E> {
  /** An event from the server. */
  onEvent: (event: E) => void;
  /** The assistant's voice (a stream with one audio track), to play. */
  onRemoteStream: (stream: MediaStream) => void;
  /** The connection dropped or was closed by the server (not by `hangup`). */
  onClosed: (failed: boolean) => void;
}

export type CallHandlers = SessionHandlers<CallEvent>;

export interface CallRequest {
  assistant: string;
  conversationId: string | null;
}

/** A microphone or camera that could not be had: `reason` is the DOMException's name ("insecure": no mediaDevices). */
export class DeviceError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** `getUserMedia`, or a `DeviceError` saying why not. */
export async function userMedia(constraints: MediaStreamConstraints): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) throw new DeviceError("insecure");
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    throw new DeviceError(err instanceof DOMException || err instanceof Error ? err.name : "unknown");
  }
}

/** Resolves once `pc` has gathered its ICE candidates (or after `ms`, with those it has). */
export function gathered(pc: RTCPeerConnection, ms = GATHER_TIMEOUT_MS): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = (): void => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * One peer connection to graft: the `events` channel, the microphone (sendrecv), a sendonly
 * video transceiver for the camera, and `recvonly` video transceivers for `slots` (a room's
 * others' cameras). Subclasses make the offer's request and say how to end on the server.
 */
export abstract class RtcSession<E extends { type: string }> {
  protected closed = false;
  /** The server said it hangs up: nothing to tell it back. */
  protected hungUpByServer = false;
  private camera: MediaStreamTrack | null = null;
  protected readonly pc: RTCPeerConnection;
  private readonly channel: RTCDataChannel;
  private readonly video: RTCRtpTransceiver;

  protected constructor(
    private readonly mic: MediaStream,
    private readonly handlers: SessionHandlers<E>,
    parse: (data: unknown) => E | null,
    slots = 0,
  ) {
    this.pc = new RTCPeerConnection({ iceServers: [] });
    this.channel = this.pc.createDataChannel("events");
    this.channel.onmessage = (message: MessageEvent) => {
      const event = parse(message.data);
      if (!event || this.closed) return;
      if (event.type === "hangup") this.hungUpByServer = true;
      handlers.onEvent(event);
    };
    this.channel.onclose = () => this.lost(false);
    for (const track of mic.getAudioTracks()) this.pc.addTransceiver(track, { direction: "sendrecv", streams: [mic] });
    this.video = this.pc.addTransceiver("video", { direction: "sendonly" });
    for (let i = 0; i < slots; i += 1) this.pc.addTransceiver("video", { direction: "recvonly" });
    this.pc.ontrack = (event: RTCTrackEvent) => {
      if (event.track.kind !== "audio") return;
      handlers.onRemoteStream(event.streams[0] ?? new MediaStream([event.track]));
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === "failed") this.lost(true);
      else if (state === "closed") this.lost(false);
    };
  }

  /** `make()` a session on `mic` and `negotiate` it; on failure the microphone stops and the connection closes. */
  protected static async establish<S extends RtcSession<never>>(mic: MediaStream, make: () => S, negotiate: (session: S) => Promise<void>): Promise<S> {
    let session: S;
    try {
      session = make();
    } catch (err) {
      for (const track of mic.getTracks()) track.stop(); // no WebRTC in this browser
      throw err;
    }
    try {
      await negotiate(session);
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  /** The offer, once ICE gathering is complete (throws when closed meanwhile). */
  protected async offer(): Promise<RTCSessionDescription> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gathered(this.pc);
    const offer = this.pc.localDescription;
    if (!offer || this.closed) throw new ApiError("closed", 0, "closed");
    return offer;
  }

  /** Stop (or resume) sending the microphone; the track stays, so unmuting is instant. */
  setMuted(muted: boolean): void {
    for (const track of this.mic.getAudioTracks()) track.enabled = !muted;
  }

  /** Turn the camera on (its stream, to preview) or off (null). A `DeviceError` when it can't be had. */
  async setCamera(on: boolean): Promise<MediaStream | null> {
    if (!on) {
      await this.video.sender.replaceTrack(null);
      this.camera?.stop();
      this.camera = null;
      return null;
    }
    const stream = await userMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    const [track] = stream.getVideoTracks();
    if (!track || this.closed) {
      for (const t of stream.getTracks()) t.stop();
      return null;
    }
    this.camera?.stop();
    this.camera = track;
    await this.video.sender.replaceTrack(track);
    return stream;
  }

  /** The level (0..1) of the assistant's voice as it plays out now (the receiver's stats). */
  async audioLevel(): Promise<number> {
    if (this.closed) return 0;
    let level = 0;
    const report = await this.pc.getStats();
    report.forEach((stat: { type?: string; kind?: string; audioLevel?: number }) => {
      if (stat.type === "inbound-rtp" && stat.kind === "audio") level = Math.max(level, stat.audioLevel ?? 0);
    });
    return level;
  }

  /**
   * End: the devices stop at once; the server is told with a `DELETE` of `url` (on the
   * channel when there is none yet), and the connection closes once it has answered, so
   * the server sees a hang-up rather than a dropped connection.
   */
  protected end(url: string | null): void {
    if (this.closed) return;
    const target = this.hungUpByServer ? null : url;
    if (!target && !this.hungUpByServer && this.channel.readyState === "open") {
      try {
        this.channel.send(JSON.stringify({ type: "hangup" }));
      } catch {
        /* closing anyway */
      }
    }
    this.release();
    if (!target) {
      this.pc.close();
      return;
    }
    const close = (): void => this.pc.close();
    const timer = setTimeout(close, 3000);
    void deleteOnServer(target).finally(() => {
      clearTimeout(timer);
      close();
    });
  }

  private lost(failed: boolean): void {
    if (this.closed) return;
    this.close();
    this.handlers.onClosed(failed);
  }

  /** Stop the devices and take no more news from the connection (which stays open). */
  private release(): void {
    this.closed = true;
    this.channel.onclose = null;
    this.pc.onconnectionstatechange = null;
    for (const track of this.mic.getTracks()) track.stop();
    this.camera?.stop();
    this.camera = null;
  }

  protected close(): void {
    if (this.closed) return;
    this.release();
    this.pc.close();
  }
}

/** `DELETE url`, even while the page is being closed (keepalive); errors are ignored. */
export async function deleteOnServer(url: string): Promise<void> {
  await fetch(url, {
    method: "DELETE",
    credentials: "same-origin",
    keepalive: true,
    headers: requestHeaders("DELETE"),
  }).catch(() => undefined);
}

export class VoiceCall extends RtcSession<CallEvent> {
  callId: string | null = null;

  private constructor(mic: MediaStream, handlers: CallHandlers) {
    super(mic, handlers, parseEvent);
  }

  /** Ask for the microphone (a `DeviceError` when that fails); nothing is sent yet. */
  static async microphone(): Promise<MediaStream> {
    return userMedia({ audio: MIC_CONSTRAINTS, video: false });
  }

  /** Call: send the offer, apply the answer. Throws `ApiError` with the server's message. */
  static async connect(mic: MediaStream, request: CallRequest, handlers: CallHandlers): Promise<VoiceCall> {
    return RtcSession.establish(
      mic,
      () => new VoiceCall(mic, handlers),
      (call) => call.negotiate(request),
    );
  }

  private async negotiate(request: CallRequest): Promise<void> {
    const offer = await this.offer();
    const body: Record<string, string> = { sdp: offer.sdp, type: "offer", assistant: request.assistant };
    if (request.conversationId) body.conversation_id = request.conversationId;
    const answer = await api<Answer>(CALLS_PATH, { method: "POST", body });
    this.callId = answer.call_id;
    if (this.closed) {
      void deleteOnServer(callUrl(answer.call_id));
      throw new ApiError("closed", 0, "closed");
    }
    await this.pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  }

  /** Hang up (see `end`): a `DELETE` of the call once the server has given its id. */
  hangup(): void {
    this.end(this.callId ? callUrl(this.callId) : null);
  }
}

function callUrl(callId: string): string {
  return `${CALLS_PATH}/${encodeURIComponent(callId)}`;
}
