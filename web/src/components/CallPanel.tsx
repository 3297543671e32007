/**
 * The voice call panel, shown in the chat column while a call lasts: it asks for the
 * microphone, connects (`lib/rtc`), and shows where the call is (an aria-live status), the
 * transcript of both sides turn by turn (`lib/call`), and the controls: mute, camera, hang
 * up (also Esc). The assistant's voice plays through an `<audio autoplay>` element. Errors
 * (the microphone refused, the server's own message, a lost connection) stay on the panel
 * until it is closed. `onClose` gets the call's conversation, so the chat can open it.
 */
import type { JSX } from "preact";
import { useEffect, useReducer, useRef } from "preact/hooks";
import { t } from "../i18n";
import { AudibleGate, type CallEvent, type CallState, endNote, isLive, isOver, reduceCall, startCall } from "../lib/call";
import { VoiceCall } from "../lib/rtc";
import { Icon } from "./Icon";
import { AnswerText, Transcript, VoiceControls, VoiceNotices, VoiceTop, useDevices, useEscape, useLatest, useVoiceSession } from "./VoicePanel";

export interface CallPanelProps {
  /** The chat page shows (the call goes on while another page does, but Esc is theirs). */
  active: boolean;
  assistant: string;
  /** The conversation the call goes on with; null: a new one. */
  conversationId: string | null;
  /** The call's conversation became known (to list it while the call goes on). */
  onConversation: (id: string) => void;
  /** The panel is done: the call's conversation, if it has one. */
  onClose: (conversationId: string | null) => void;
}

function statusText(state: CallState): string {
  if (state.status === "thinking" && state.tool) return t("call.tool", { name: state.tool });
  return t(`call.status.${state.status}`);
}

export function CallPanel({ active, assistant, conversationId, onConversation, onClose }: CallPanelProps): JSX.Element {
  const [state, dispatch] = useReducer(reduceCall, conversationId, startCall);
  const preview = useRef<HTMLVideoElement>(null);
  const stateRef = useLatest(state);
  const onCloseRef = useLatest(onClose);

  // --- the call's life: microphone, offer, answer; hung up when the panel goes ----------
  const {
    session: call,
    audio,
    stop: stopCall,
  } = useVoiceSession<VoiceCall, CallEvent>(
    {
      connect: (mic, handlers) => VoiceCall.connect(mic, { assistant, conversationId }, handlers),
      end: (connected) => connected.hangup(),
      lost: "call.lost",
      connected: (connected) => {
        if (connected.callId) dispatch({ type: "answered", callId: connected.callId });
      },
    },
    dispatch,
  );
  const devices = useDevices(call, state, dispatch, (stream) => {
    if (preview.current) preview.current.srcObject = stream;
  });

  // The assistant's voice level, a few times a second, says when it speaks and stops.
  const live = isLive(state);
  useEffect(() => {
    if (!live) return;
    const gate = new AudibleGate();
    let heard = false;
    let unheard = 0; // polls since a sentence was announced whose sound has not come
    const timer = setInterval(() => {
      const current = call.current;
      if (!current) return;
      current.audioLevel().then(
        (level) => {
          const on = gate.update(level, Date.now());
          unheard = stateRef.current.audible && !on ? unheard + 1 : 0;
          if (on !== heard || unheard > 15) {
            dispatch({ type: "audible", on });
            unheard = 0;
          }
          heard = on;
        },
        () => undefined,
      );
    }, 200);
    return () => clearInterval(timer);
  }, [live]);

  useEffect(() => {
    if (state.conversationId) onConversation(state.conversationId);
  }, [state.conversationId]);

  // A call that is over needs no devices: the camera preview goes too.
  useEffect(() => {
    if (isOver(state)) {
      stopCall();
      if (preview.current) preview.current.srcObject = null;
    }
  }, [state.status]);

  // (Also called on Esc: the latest `onClose` through a ref.)
  const close = (): void => onCloseRef.current(stateRef.current.conversationId);

  const hangup = (): void => {
    stopCall();
    close();
  };

  useEscape(active, () => (isOver(stateRef.current) ? close() : hangup()));

  const over = isOver(state);
  const note = endNote(state.endReason);
  return (
    <section class="call-panel" aria-labelledby="call-title" data-testid="call-panel" data-status={state.status}>
      <VoiceTop orb={state.status} icon={state.muted ? "micOff" : "mic"} titleId="call-title" title={t("call.title", { assistant })} statusTestid="call-status">
        {statusText(state)}
        {state.muted && live ? ` · ${t("call.mutedNote")}` : ""}
      </VoiceTop>
      <VoiceNotices prefix="call" error={state.error?.message ?? null} cameraError={devices.cameraError} note={note} />
      <video
        ref={preview}
        class="call-preview"
        hidden={!state.camera}
        autoplay
        muted
        playsInline
        aria-hidden="true"
        data-testid="call-preview"
      />
      <Transcript label={t("call.transcript")} testid="call-transcript" items={state.turns} empty={over ? t("call.nothingSaid") : t("call.speak")}>
        {state.turns.map((turn) => (
          <div class="call-turn" key={turn.key} data-testid="call-turn">
            {turn.user !== null && (
              <p class="call-line caller" data-testid="call-caller" lang={turn.language || undefined}>
                <span class="call-who">{t("call.you")}</span>
                {turn.user}
              </p>
            )}
            {(turn.assistant || !turn.done) && (
              <p class="call-line assistant" data-testid="call-answer">
                <span class="call-who">{assistant}</span>
                <AnswerText text={turn.assistant} interrupted={turn.interrupted} />
              </p>
            )}
          </div>
        ))}
      </Transcript>
      <VoiceControls prefix="call" over={over} live={live} state={state} devices={devices} onEnd={hangup} onClose={close}
        end={{ testid: "call-hangup", hint: t("call.hangupHint"), icon: <Icon name="phone" class="hangup-icon" />, label: t("call.hangup") }} />
      <audio ref={audio} autoplay data-testid="call-audio" />
    </section>
  );
}
