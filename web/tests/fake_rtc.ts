/**
 * A stand-in RTCPeerConnection for the signalling tests (jsdom has none): it records the
 * data channel, the transceivers offered and the remote description; ICE "gathers" 5 ms
 * after the local description is set; the answer gives each transceiver a `mid` (its index,
 * as a browser's first offer does) and a receiver track of its kind. Also the setup the
 * call's and the room's signalling tests share: `stubSignalling` and `recordHandlers`.
 */
import { vi } from "vitest";
import type { SessionHandlers } from "../src/lib/rtc";

export class FakeChannel {
  readyState = "connecting";
  sent: string[] = [];
  onmessage: ((m: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly label: string) {}
  send(data: string): void {
    this.sent.push(data);
  }
}

export interface FakeTransceiver {
  what: unknown;
  init: RTCRtpTransceiverInit;
  mid: string | null;
  sender: { track: unknown; replaceTrack: (track: unknown) => Promise<void> };
  receiver: { track: { kind: string; id: string } };
}

export class FakePC extends EventTarget {
  static last: FakePC;
  iceGatheringState = "new";
  connectionState = "new";
  localDescription: { type: string; sdp: string } | null = null;
  remote: { type: string; sdp: string } | null = null;
  channel: FakeChannel | null = null;
  transceivers: FakeTransceiver[] = [];
  closed = false;
  ontrack: ((e: unknown) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;

  constructor(readonly config: RTCConfiguration) {
    super();
    FakePC.last = this;
  }
  createDataChannel(label: string): FakeChannel {
    this.channel = new FakeChannel(label);
    return this.channel;
  }
  addTransceiver(what: unknown, init: RTCRtpTransceiverInit): FakeTransceiver {
    const kind = typeof what === "string" ? what : ((what as { kind?: string }).kind ?? "audio");
    const t: FakeTransceiver = {
      what,
      init,
      mid: null,
      sender: {
        track: typeof what === "string" ? null : what,
        replaceTrack: async (track) => {
          t.sender.track = track;
        },
      },
      receiver: { track: { kind, id: `remote-${this.transceivers.length}` } },
    };
    this.transceivers.push(t);
    return t;
  }
  getTransceivers(): FakeTransceiver[] {
    return this.transceivers;
  }
  async createOffer(): Promise<{ type: string; sdp: string }> {
    return { type: "offer", sdp: "v=0 offer" };
  }
  async setLocalDescription(d: { type: string; sdp: string }): Promise<void> {
    this.localDescription = { type: d.type, sdp: `${d.sdp} (no candidates yet)` };
    this.iceGatheringState = "gathering";
    setTimeout(() => {
      this.localDescription = { type: d.type, sdp: `${d.sdp} a=candidate:1` };
      this.iceGatheringState = "complete";
      this.dispatchEvent(new Event("icegatheringstatechange"));
    }, 5);
  }
  async setRemoteDescription(d: { type: string; sdp: string }): Promise<void> {
    this.remote = d;
    this.transceivers.forEach((t, i) => {
      t.mid = String(i);
    });
  }
  close(): void {
    this.closed = true;
  }
  fail(): void {
    this.connectionState = "failed";
    this.onconnectionstatechange?.();
  }
}

export function fakeMic(): { stream: MediaStream; track: { enabled: boolean; stopped: boolean; kind: string; stop: () => void } } {
  const track = {
    kind: "audio",
    enabled: true,
    stopped: false,
    stop() {
      this.stopped = true;
    },
  };
  const stream = { getAudioTracks: () => [track], getTracks: () => [track] } as unknown as MediaStream;
  return { stream, track };
}

/** A request the code under test made: its URL and init. */
export interface Sent {
  url: string;
  init: RequestInit;
}

/**
 * The stand-ins of a signalling test: FakePC for RTCPeerConnection, a `fetch` that records
 * each request in `sent` and answers a DELETE with 204 and anything else with `reply()`, and
 * the CSRF cookie. (`vi.unstubAllGlobals()` after each test undoes the stubs.)
 */
export function stubSignalling(sent: Sent[], reply: () => Response): void {
  vi.stubGlobal("RTCPeerConnection", FakePC);
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit) => {
      sent.push({ url, init });
      return init.method === "DELETE" ? new Response(null, { status: 204 }) : reply();
    }),
  );
  document.cookie = "graft_csrf=tok123";
}

/** Handlers that record what a session tells: its events, its closings, its remote streams. */
export function recordHandlers<E>(): { events: E[]; closed: boolean[]; streams: MediaStream[]; h: SessionHandlers<E> } {
  const events: E[] = [];
  const closed: boolean[] = [];
  const streams: MediaStream[] = [];
  return {
    events,
    closed,
    streams,
    h: { onEvent: (e) => events.push(e), onClosed: (f) => closed.push(f), onRemoteStream: (s) => streams.push(s) },
  };
}
