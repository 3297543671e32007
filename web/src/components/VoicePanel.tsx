/**
 * What the voice call panel (`CallPanel`) and the voice room panel (`RoomPanel`) share, so
 * the two look and behave alike: the session's life (the microphone first, then the
 * connection; ended when the panel goes), mute and the camera, Esc, and the pieces of the
 * panel — its top (orb, title, aria-live status), its error and end notices, the transcript
 * log that keeps its end in view, an answer's text, and the controls (mute, camera, hang up
 * or leave; close once it is over, with the focus moving between them).
 */
import type { ComponentChildren, JSX, RefObject } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type Key, t } from "../i18n";
import { mediaProblem } from "../lib/call";
import { DeviceError, type RtcSession, type SessionHandlers, VoiceCall } from "../lib/rtc";
import type { VoiceAction } from "../lib/voicestate";
import { ErrorBanner, errorText } from "./Common";
import { Icon, type IconName } from "./Icon";

/** A ref that always holds the latest `value` (for listeners made once, at mount). */
export function useLatest<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  ref.current = value;
  return ref;
}

/** Esc calls the latest `onEscape` while `active` (the chat page shows; Esc is another page's otherwise). */
export function useEscape(active: boolean, onEscape: () => void): void {
  const activeRef = useLatest(active);
  const onEscapeRef = useLatest(onEscape);
  useEffect(() => {
    const onKey = (event: KeyboardEvent): void => {
      if (event.key !== "Escape" || !activeRef.current) return;
      event.preventDefault();
      onEscapeRef.current();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
}

type SessionDispatch<E> = (action: VoiceAction | { type: "event"; event: E }) => void;

/** How `useVoiceSession` starts and ends one kind of session. */
export interface SessionKind<S, E> {
  /** Connect with the microphone `mic` (a call, or a room's join). */
  connect: (mic: MediaStream, handlers: SessionHandlers<E>) => Promise<S>;
  /** End it (hang up, or leave). */
  end: (session: S) => void;
  /** The message key for a lost connection. */
  lost: Key;
  /** It is connected (and the panel still wants it). */
  connected: (session: S) => void;
}

/**
 * The session's life: the microphone, then `kind.connect`; ended when the panel goes.
 * Its steps and events go to `dispatch`; the others' voices play on `audio`. `stop` ends it
 * now (and again is nothing).
 */
export function useVoiceSession<S extends RtcSession<never>, E>(
  kind: SessionKind<S, E>,
  dispatch: SessionDispatch<E>,
): { session: RefObject<S>; audio: RefObject<HTMLAudioElement>; stop: () => void } {
  const session = useRef<S | null>(null);
  const audio = useRef<HTMLAudioElement>(null);
  const stop = (): void => {
    if (session.current) kind.end(session.current);
    session.current = null;
  };
  useEffect(() => {
    let cancelled = false;
    void (async () => {
      let mic: MediaStream;
      try {
        mic = await VoiceCall.microphone();
      } catch (err) {
        const reason = err instanceof DeviceError ? err.reason : "unknown";
        if (!cancelled) dispatch({ type: "failed", error: { message: t(mediaProblem(reason)), code: reason } });
        return;
      }
      if (cancelled) {
        for (const track of mic.getTracks()) track.stop();
        return;
      }
      dispatch({ type: "connecting" });
      try {
        const connected = await kind.connect(mic, {
          onEvent: (event) => dispatch({ type: "event", event }),
          onRemoteStream: (stream) => {
            if (audio.current) audio.current.srcObject = stream;
          },
          onClosed: (failed) => dispatch(failed ? { type: "failed", error: { message: t(kind.lost), code: "connection" } } : { type: "ended" }),
        });
        if (cancelled) {
          kind.end(connected);
          return;
        }
        session.current = connected;
        kind.connected(connected);
      } catch (err) {
        if (!cancelled) dispatch({ type: "failed", error: { message: errorText(err), code: "server" } });
      }
    })();
    return () => {
      cancelled = true;
      stop();
    };
  }, []);
  return { session, audio, stop };
}

/** Whether the microphone is muted and the camera on. */
interface DeviceState {
  muted: boolean;
  camera: boolean;
}

/** What `useDevices` gives the panel. */
export interface Devices {
  cameraBusy: boolean;
  cameraError: string | null;
  toggleMute: () => void;
  toggleCamera: () => Promise<void>;
}

/**
 * Mute and the camera of `session`: `show` gets the camera's stream to preview (null: none).
 * A camera that cannot be had is explained in `cameraError`.
 */
export function useDevices(
  session: RefObject<RtcSession<never>>,
  state: DeviceState,
  dispatch: (action: VoiceAction) => void,
  show: (stream: MediaStream | null) => void,
): Devices {
  const [cameraBusy, setCameraBusy] = useState(false);
  const [cameraError, setCameraError] = useState<string | null>(null);

  const toggleMute = (): void => {
    const muted = !state.muted;
    session.current?.setMuted(muted);
    dispatch({ type: "muted", muted });
  };

  const toggleCamera = async (): Promise<void> => {
    const current = session.current;
    if (!current || cameraBusy) return;
    const on = !state.camera;
    setCameraBusy(true);
    setCameraError(null);
    try {
      const stream = await current.setCamera(on);
      show(stream);
      dispatch({ type: "camera", on: on && stream !== null });
    } catch (err) {
      const reason = err instanceof DeviceError ? err.reason : "unknown";
      setCameraError(mediaProblem(reason) === "call.micDenied" ? t("call.cameraDenied") : t("call.cameraFailed"));
    } finally {
      setCameraBusy(false);
    }
  };

  return { cameraBusy, cameraError, toggleMute, toggleCamera };
}

/**
 * The panel's top: the orb (`orb`: its state class), the title and the status line. With
 * `statusTestid` the status is announced (role status, aria-live polite).
 */
export function VoiceTop({
  orb,
  icon,
  titleId,
  title,
  statusTestid,
  children,
}: {
  orb?: string;
  icon: IconName;
  titleId: string;
  title: string;
  statusTestid?: string;
  children: ComponentChildren;
}): JSX.Element {
  return (
    <div class="call-top">
      <div class={orb ? `call-orb ${orb}` : "call-orb"} aria-hidden="true">
        <Icon name={icon} size={26} />
      </div>
      <div class="call-heading">
        <h2 id={titleId}>{title}</h2>
        <p class="call-status" role={statusTestid ? "status" : undefined} aria-live={statusTestid ? "polite" : undefined} data-testid={statusTestid}>
          {children}
        </p>
      </div>
    </div>
  );
}

/** The last error (`{prefix}-error`), the camera's, and why the server ended it (`{prefix}-ended`). */
export function VoiceNotices({
  prefix,
  error,
  cameraError,
  note,
}: {
  prefix: string;
  error: string | null;
  cameraError: string | null;
  note: Key | null;
}): JSX.Element {
  return (
    <>
      {error && (
        <div data-testid={`${prefix}-error`}>
          <ErrorBanner error={error} />
        </div>
      )}
      {cameraError && <ErrorBanner error={cameraError} />}
      {note && (
        <p class="banner warn" data-testid={`${prefix}-ended`}>
          {t(note)}
        </p>
      )}
    </>
  );
}

/** The transcript log: `empty` until there are `items`; it scrolls to its end as they change. */
export function Transcript({
  label,
  testid,
  items,
  empty,
  children,
}: {
  label: string;
  testid: string;
  items: readonly unknown[];
  empty: string;
  children: ComponentChildren;
}): JSX.Element {
  const log = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [items]);
  return (
    <div class="call-transcript" ref={log} role="log" aria-label={label} data-testid={testid} tabIndex={0}>
      {items.length === 0 && <p class="muted call-empty">{empty}</p>}
      {children}
    </div>
  );
}

/** An answer's text so far (… before the first word), and whether it was cut off. */
export function AnswerText({ text, interrupted }: { text: string; interrupted?: boolean }): JSX.Element {
  return (
    <>
      {text || <span class="muted">…</span>}
      {interrupted && <span class="muted"> {t("call.interrupted")}</span>}
    </>
  );
}

/**
 * Mute, camera and the end button (hang up or leave) while it lasts; close once it is over.
 * The focus goes to the end button while it lasts, to close once it is over.
 */
export function VoiceControls({
  prefix,
  over,
  live,
  state: { muted, camera },
  devices: { cameraBusy, toggleMute, toggleCamera },
  end,
  onEnd,
  onClose,
}: {
  prefix: string;
  over: boolean;
  live: boolean;
  state: DeviceState;
  devices: Devices;
  /** The end button: its test id, hint, icon and label. */
  end: { testid: string; hint: string; icon: JSX.Element; label: string };
  onEnd: () => void;
  onClose: () => void;
}): JSX.Element {
  const endButton = useRef<HTMLButtonElement>(null);
  const closeButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    (over ? closeButton : endButton).current?.focus();
  }, [over]);
  return (
    <div class="call-controls">
      {!over ? (
        <>
          <button
            type="button"
            class={`btn call-toggle${muted ? " on" : ""}`}
            data-testid={`${prefix}-mute`}
            aria-pressed={muted}
            disabled={!live}
            onClick={toggleMute}
          >
            <Icon name={muted ? "micOff" : "mic"} />
            {t("call.mute")}
          </button>
          <button
            type="button"
            class={`btn call-toggle${camera ? " on" : ""}`}
            data-testid={`${prefix}-camera`}
            aria-pressed={camera}
            disabled={!live || cameraBusy}
            onClick={() => void toggleCamera()}
          >
            <Icon name={camera ? "video" : "videoOff"} />
            {t("call.camera")}
          </button>
          <button type="button" class="btn hangup" ref={endButton} data-testid={end.testid} title={end.hint} onClick={onEnd}>
            {end.icon}
            {end.label}
          </button>
        </>
      ) : (
        <button type="button" class="btn primary" ref={closeButton} data-testid={`${prefix}-close`} onClick={onClose}>
          {t("call.close")}
        </button>
      )}
    </div>
  );
}
