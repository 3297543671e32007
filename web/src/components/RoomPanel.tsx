/**
 * The voice room panel, shown in the chat column in place of the messages (as the call
 * panel is). First a small form asks for the room's name (checked as the server checks it)
 * and an optional display name; then it asks for the microphone, joins (`lib/roomrtc`) and
 * shows the room (`lib/room`): where we are (an aria-live status), who is in the room, the
 * others' cameras in our video slots and our own preview, the transcript of everyone with
 * their names and the assistant's answers, and the controls: mute, camera, leave (also
 * Esc). What everyone else says, and the assistant, plays through an `<audio autoplay>`.
 * Errors stay on the panel until it is closed; `onClose` gets our own conversation in the
 * room (our questions to the assistant), when there is one.
 */
import type { JSX } from "preact";
import { useEffect, useReducer, useRef, useState } from "preact/hooks";
import { t } from "../i18n";
import { type RoomEvent, type RoomState, displayNameProblem, filledSlots, isOver, reduceRoom, roomEndNote, roomNameProblem, startRoom } from "../lib/room";
import { type JoinRequest, RoomCall } from "../lib/roomrtc";
import { Icon } from "./Icon";
import { AnswerText, Transcript, VoiceControls, VoiceNotices, VoiceTop, useDevices, useEscape, useLatest, useVoiceSession } from "./VoicePanel";

export interface RoomPanelProps {
  /** The chat page shows (the room goes on while another page does, but Esc is theirs). */
  active: boolean;
  /** The assistant of a room this join makes (a room that exists keeps its own). */
  assistant: string;
  /** The panel is done: our conversation in the room, if we asked the assistant anything. */
  onClose: (conversationId: string | null) => void;
}

export function RoomPanel({ active, assistant, onClose }: RoomPanelProps): JSX.Element {
  const [request, setRequest] = useState<JoinRequest | null>(null);
  return request ? (
    <RoomView active={active} request={request} onClose={onClose} />
  ) : (
    <JoinForm active={active} assistant={assistant} onJoin={setRequest} onCancel={() => onClose(null)} />
  );
}

// --- the join form -----------------------------------------------------------------------

function JoinForm({
  active,
  assistant,
  onJoin,
  onCancel,
}: {
  active: boolean;
  assistant: string;
  onJoin: (request: JoinRequest) => void;
  onCancel: () => void;
}): JSX.Element {
  const [room, setRoom] = useState("");
  const [name, setName] = useState("");
  const [roomError, setRoomError] = useState<string | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const roomInput = useRef<HTMLInputElement>(null);
  const nameInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    roomInput.current?.focus();
  }, []);
  useEscape(active, onCancel);

  const submit = (event: Event): void => {
    event.preventDefault();
    const wanted = room.trim();
    const roomProblem = roomNameProblem(wanted);
    const nameProblem = displayNameProblem(name);
    setRoomError(roomProblem && t(roomProblem));
    setNameError(nameProblem && t(nameProblem));
    if (roomProblem) roomInput.current?.focus();
    else if (nameProblem) nameInput.current?.focus();
    if (roomProblem || nameProblem) return;
    onJoin({ room: wanted, name: name.trim() || null, assistant });
  };

  return (
    <section class="call-panel room-panel" aria-labelledby="room-form-title" data-testid="room-form">
      <VoiceTop icon="users" titleId="room-form-title" title={t("room.joinTitle")}>
        {t("room.joinIntro", { assistant })}
      </VoiceTop>
      <form class="room-form" onSubmit={submit} noValidate>
        <div class="field">
          <label for="room-name">{t("room.name")}</label>
          <input
            id="room-name"
            ref={roomInput}
            data-testid="room-name"
            value={room}
            autoComplete="off"
            autoCapitalize="none"
            spellcheck={false}
            maxLength={200}
            placeholder="standup"
            required
            aria-invalid={roomError ? "true" : undefined}
            aria-describedby={roomError ? "room-name-error room-name-help" : "room-name-help"}
            onInput={(e) => {
              setRoom(e.currentTarget.value);
              if (roomError) setRoomError(null);
            }}
          />
          <p id="room-name-help" class="muted small">
            {t("room.nameHelp")}
          </p>
          {roomError && (
            <p id="room-name-error" class="form-error" role="alert" data-testid="room-name-error">
              {roomError}
            </p>
          )}
        </div>
        <div class="field">
          <label for="room-display-name">{t("room.displayName")}</label>
          <input
            id="room-display-name"
            ref={nameInput}
            data-testid="room-display-name"
            value={name}
            autoComplete="nickname"
            maxLength={200}
            aria-invalid={nameError ? "true" : undefined}
            aria-describedby={nameError ? "room-display-name-error room-display-name-help" : "room-display-name-help"}
            onInput={(e) => {
              setName(e.currentTarget.value);
              if (nameError) setNameError(null);
            }}
          />
          <p id="room-display-name-help" class="muted small">
            {t("room.displayNameHelp")}
          </p>
          {nameError && (
            <p id="room-display-name-error" class="form-error" role="alert">
              {nameError}
            </p>
          )}
        </div>
        <div class="call-controls">
          <button type="button" class="btn" data-testid="room-cancel" onClick={onCancel}>
            {t("common.cancel")}
          </button>
          <button type="submit" class="btn primary" data-testid="room-join">
            <Icon name="users" />
            {t("room.join")}
          </button>
        </div>
      </form>
    </section>
  );
}

// --- the room ----------------------------------------------------------------------------

/** A `<video>` showing `stream` (muted: the room's sound is the mix on the audio element). */
function VideoTile({ stream, label, testid, who }: { stream: MediaStream | null; label: string; testid: string; who?: string }): JSX.Element {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const el = video.current;
    if (el && el.srcObject !== stream) el.srcObject = stream;
  }, [stream]);
  return (
    <figure class="room-tile" data-testid={testid} data-who={who}>
      <video ref={video} autoplay muted playsInline aria-hidden="true" />
      <figcaption>{label}</figcaption>
    </figure>
  );
}

function statusText(state: RoomState): string {
  if (state.status === "live" && state.tool) return t("call.tool", { name: state.tool });
  return t(`room.status.${state.status}`);
}

function RoomView({ active, request, onClose }: { active: boolean; request: JoinRequest; onClose: (conversationId: string | null) => void }): JSX.Element {
  const [state, dispatch] = useReducer(reduceRoom, null, () => startRoom(request.room, request.assistant));
  const [preview, setPreview] = useState<MediaStream | null>(null);
  const stateRef = useLatest(state);
  const onCloseRef = useLatest(onClose);

  // --- the visit: microphone, offer, answer; we leave when the panel goes ----------------
  const {
    session: call,
    audio,
    stop: stopVisit,
  } = useVoiceSession<RoomCall, RoomEvent>(
    {
      connect: (mic, handlers) => RoomCall.join(mic, request, handlers),
      end: (joined) => joined.leave(),
      lost: "room.lost",
      connected: (joined) => {
        if (joined.joined) dispatch({ type: "joined", answer: joined.joined });
      },
    },
    dispatch,
  );
  const devices = useDevices(call, state, dispatch, setPreview);

  // Out of the room: no devices any more, and no camera preview.
  const over = isOver(state);
  useEffect(() => {
    if (!over) return;
    stopVisit();
    setPreview(null);
  }, [over]);

  const close = (): void => onCloseRef.current(stateRef.current.conversationId);

  const leave = (): void => {
    stopVisit();
    close();
  };

  useEscape(active, () => (isOver(stateRef.current) ? close() : leave()));

  const live = state.status === "live" || (state.status === "connecting" && state.participantId !== null);
  const note = roomEndNote(state.endReason);
  const tiles = filledSlots(state);
  const room = call.current;
  return (
    <section class="call-panel room-panel" aria-labelledby="room-title" data-testid="room-panel" data-status={state.status}>
      <VoiceTop orb={state.status === "live" ? "listening" : state.status} icon={state.muted ? "micOff" : "users"} titleId="room-title" title={t("room.title", { room: state.room })} statusTestid="room-status">
        {statusText(state)}
        {state.muted && !over ? ` · ${t("call.mutedNote")}` : ""}
      </VoiceTop>
      {!over && (
        <p class="room-hint" data-testid="room-hint">
          {t("room.hint", { assistant: state.assistant })}
        </p>
      )}
      <VoiceNotices prefix="room" error={state.error?.message ?? null} cameraError={devices.cameraError} note={note} />
      <div class="room-stage">
        {(tiles.length > 0 || preview) && (
          <div class="room-videos" role="group" aria-label={t("room.videos")} data-testid="room-videos">
            {tiles.map((slot) => (
              <VideoTile
                key={slot.mid}
                stream={room ? room.slotStream(slot.mid) : null}
                label={slot.participant}
                who={slot.participant}
                testid="room-tile"
              />
            ))}
            {preview && <VideoTile stream={preview} label={t("room.yourCamera")} testid="room-preview" />}
          </div>
        )}
        {state.participants.length > 0 && (
          <div class="room-people">
            <h3 id="room-people-title">{t("room.people", { count: state.participants.length })}</h3>
            <ul aria-labelledby="room-people-title" data-testid="room-people">
              {state.participants.map((person) => (
                <li key={person} data-testid="room-person" data-name={person}>
                  {person}
                  {person === state.name && <span class="muted"> ({t("room.you")})</span>}
                </li>
              ))}
            </ul>
          </div>
        )}
      </div>
      <Transcript label={t("room.transcript")} testid="room-transcript" items={state.lines} empty={t("room.speak")}>
        {state.lines.map((line) =>
          line.kind === "notice" ? (
            <p class="room-notice muted" key={line.key} data-testid="room-notice" data-notice={line.notice} data-who={line.who}>
              {t(line.notice === "left" ? "room.left" : "room.joined", { name: line.who })}
            </p>
          ) : line.kind === "person" ? (
            <p class="call-line caller room-line" key={line.key} data-testid="room-said" data-who={line.who} lang={line.language || undefined}>
              <span class="call-who">
                {line.who}
                {line.who === state.name ? ` (${t("room.you")})` : ""}
              </span>
              {line.text}
            </p>
          ) : (
            <p class="call-line assistant room-line" key={line.key} data-testid="room-answer" data-who={line.who}>
              <span class="call-who">{t("room.answerTo", { assistant: state.assistant, name: line.who })}</span>
              <AnswerText text={line.text} interrupted={line.interrupted} />
            </p>
          ),
        )}
      </Transcript>
      <VoiceControls prefix="room" over={over} live={live} state={state} devices={devices} onEnd={leave} onClose={close}
        end={{ testid: "room-leave", hint: t("room.leaveHint"), icon: <Icon name="logout" />, label: t("room.leave") }} />
      <audio ref={audio} autoplay data-testid="room-audio" />
    </section>
  );
}
