/**
 * The chat page: conversation list, assistant picker, messages and composer.
 *
 * A turn streams over fetch (`lib/stream`); chunks fold into the answer (`lib/chat`), which
 * is drawn at most once a frame. A new chat sends the first message alone and adopts the
 * conversation id the server gives; later messages send only themselves with that id.
 * Regenerate and edit-and-resend start a new branch: the history up to that point is sent
 * statelessly (no conversation id), the server stores it as a new conversation, and the
 * page switches to it. The page stays mounted while other pages show, so a stream goes on.
 * The call button opens the voice call panel in place of the messages; when the call ends,
 * its conversation (stored turn by turn, like a chat) is listed and opened. The room button
 * opens the voice room panel there the same way (a call with other people and the assistant).
 */
import type { JSX } from "preact";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, query } from "../api/client";
import type { Conversation, ConversationHeader, Feedback, ListOf, ModelInfo } from "../api/types";
import { CallPanel } from "../components/CallPanel";
import { ErrorBanner, Skeleton, errorText } from "../components/Common";
import { Composer } from "../components/Composer";
import { ConversationList } from "../components/ConversationList";
import { Icon } from "../components/Icon";
import { type MessageActions, MessageView } from "../components/Message";
import { RoomPanel } from "../components/RoomPanel";
import { t } from "../i18n";
import {
  type ChatMessage,
  applyChunk,
  assistantMessage,
  decideTool,
  finish,
  fromConversation,
  historyBefore,
  userMessage,
} from "../lib/chat";
import { type ChatRequest, streamChat } from "../lib/stream";
import { navigate, setChatPath } from "../router";
import { toast } from "../toast";

const PICKED = "graft.assistant";

interface Live {
  key: string;
  draft: ChatMessage;
  schedule: () => void;
}

function storedAssistant(): string | null {
  try {
    return localStorage.getItem(PICKED);
  } catch {
    return null;
  }
}

export function ChatPage({ active, routeId }: { active: boolean; routeId: string | null }): JSX.Element {
  const [models, setModels] = useState<string[] | null>(null);
  const [modelsError, setModelsError] = useState<string | null>(null);
  const [assistant, setAssistant] = useState<string>(storedAssistant() ?? "");
  const [conversationId, setConversationId] = useState<string | null>(null);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [loading, setLoading] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [streamingKey, setStreamingKey] = useState<string | null>(null);
  const [draft, setDraft] = useState("");
  const [conversations, setConversations] = useState<ConversationHeader[]>([]);
  const [listLoading, setListLoading] = useState(true);
  const [listError, setListError] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [drawer, setDrawer] = useState(false);
  const [stuck, setStuck] = useState(true);
  const [calling, setCalling] = useState(false);
  const [rooming, setRooming] = useState(false);
  const inVoice = calling || rooming;
  const activeRef = useRef(active);
  activeRef.current = active;

  const idRef = useRef<string | null>(null);
  const controller = useRef<AbortController | null>(null);
  const live = useRef<Live | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const searchRef = useRef(search);
  searchRef.current = search;

  // --- assistants -------------------------------------------------------------------
  // Asked again each time the page shows: one made in the admin pages meanwhile is offered.
  useEffect(() => {
    if (!active) return;
    api<ListOf<ModelInfo>>("/v1/models").then(
      (list) => {
        const ids = list.data.map((m) => m.id);
        setModels(ids);
        setModelsError(null);
        setAssistant((current) => (current && ids.includes(current) ? current : (ids[0] ?? "")));
      },
      (err: unknown) => setModelsError(errorText(err)),
    );
  }, [active]);

  const pick = (name: string): void => {
    setAssistant(name);
    try {
      localStorage.setItem(PICKED, name);
    } catch {
      /* ignore */
    }
  };

  // --- conversation list -----------------------------------------------------------
  const refreshList = useCallback(async (): Promise<void> => {
    try {
      const q = searchRef.current.trim();
      const list = await api<ListOf<ConversationHeader>>(`/v1/conversations${query({ limit: 100, q })}`);
      setConversations(list.data);
      setListError(null);
    } catch (err) {
      setListError(errorText(err));
    } finally {
      setListLoading(false);
    }
  }, []);

  useEffect(() => {
    const timer = setTimeout(() => void refreshList(), search ? 250 : 0);
    return () => clearTimeout(timer);
  }, [search, refreshList]);

  // --- switching conversations ------------------------------------------------------
  const stop = (): void => controller.current?.abort();

  // Stop any answer and show conversation `id` from the top: empty, and loading unless new (null).
  const switchTo = (id: string | null): void => {
    stop();
    idRef.current = id;
    setConversationId(id);
    setMessages([]);
    setLoadError(null);
    setLoading(id !== null);
    stick.current = true;
    setStuck(true);
  };

  const reset = (): void => switchTo(null);

  const load = async (id: string): Promise<void> => {
    switchTo(id);
    try {
      const conversation = await api<Conversation>(`/v1/conversations/${encodeURIComponent(id)}`);
      if (idRef.current !== id) return;
      setMessages(fromConversation(conversation));
      if (conversation.assistant) setAssistant(conversation.assistant);
    } catch (err) {
      if (idRef.current === id) setLoadError(errorText(err));
    } finally {
      if (idRef.current === id) setLoading(false);
    }
  };

  useEffect(() => {
    if (!active) return;
    setChatPath(routeId ? `/chat/${routeId}` : "/chat");
    if (routeId === idRef.current) return;
    if (routeId === null) reset();
    else void load(routeId);
  }, [routeId, active]);

  const newChat = (): void => {
    setDrawer(false);
    reset();
    setDraft("");
    navigate("/chat");
  };

  // --- streaming --------------------------------------------------------------------
  const adopt = (id: string): void => {
    if (idRef.current === id) return;
    idRef.current = id;
    setConversationId(id);
    setChatPath(`/chat/${id}`);
    navigate(`/chat/${id}`, true);
    void refreshList();
  };

  const run = async (request: ChatRequest, user: ChatMessage, answer: ChatMessage): Promise<void> => {
    const abort = new AbortController();
    controller.current = abort;
    setStreamingKey(answer.key);
    stick.current = true;
    setStuck(true);
    let timer = 0;
    const flush = (): void => {
      timer = 0;
      const current = live.current;
      if (!current || current.key !== answer.key) return;
      const snapshot = current.draft;
      setMessages((list) => list.map((m) => (m.key === answer.key ? snapshot : m)));
    };
    const schedule = (): void => {
      if (timer) return;
      timer = document.hidden ? window.setTimeout(flush, 100) : requestAnimationFrame(flush);
    };
    const state: Live = { key: answer.key, draft: answer, schedule };
    live.current = state;
    const isNew = request.conversation_id === undefined;
    try {
      await streamChat(
        request,
        abort.signal,
        (chunk) => {
          const [next, effects] = applyChunk(state.draft, chunk);
          state.draft = next;
          if (effects.conversationId) adopt(effects.conversationId);
          if (effects.sentiment || effects.turnId) {
            setMessages((list) =>
              list.map((m) =>
                m.key === user.key
                  ? { ...m, ...(effects.sentiment ? { sentiment: effects.sentiment } : {}), ...(effects.turnId ? { turnId: effects.turnId } : {}) }
                  : m,
              ),
            );
          }
          schedule();
        },
        adopt,
      );
      state.draft = finish(state.draft);
    } catch (err) {
      state.draft = abort.signal.aborted ? finish(state.draft, { stopped: true }) : finish(state.draft, { error: errorText(err) });
    }
    if (timer) {
      cancelAnimationFrame(timer);
      clearTimeout(timer);
    }
    flush();
    if (live.current === state) live.current = null;
    if (controller.current === abort) controller.current = null;
    setStreamingKey((key) => (key === answer.key ? null : key));
    await refreshList();
    if (isNew) setTimeout(() => void refreshList(), 2500); // a title may come a little later
  };

  const send = (): void => {
    const text = draft.trim();
    if (!text || streamingKey || !assistant) return;
    const user = userMessage(text);
    const answer = assistantMessage();
    setMessages((list) => [...list, user, answer]);
    setDraft("");
    const request: ChatRequest = { model: assistant, messages: [{ role: "user", content: text }] };
    if (idRef.current) request.conversation_id = idRef.current;
    void run(request, user, answer);
  };

  /** A new branch: `history` sent statelessly; the page shows `kept` + the new turn. */
  const branch = (kept: ChatMessage[], user: ChatMessage, history: ChatRequest["messages"]): void => {
    if (streamingKey || !assistant) return;
    const answer = assistantMessage();
    idRef.current = null;
    setConversationId(null);
    setMessages([...kept, user, answer]);
    void run({ model: assistant, messages: history }, user, answer);
  };

  const actions: MessageActions = {
    busy: streamingKey !== null,
    onEdit: (index, text) => {
      const user = userMessage(text);
      branch(messages.slice(0, index), user, [...historyBefore(messages, index), { role: "user", content: text }]);
    },
    onRegenerate: (index) => {
      let u = index - 1;
      while (u >= 0 && messages[u]?.role !== "user") u -= 1;
      const original = messages[u];
      if (u < 0 || !original) return;
      const user: ChatMessage = { ...original, key: `${original.key}r${Date.now()}`, turnId: undefined, sentiment: undefined };
      branch(messages.slice(0, u), user, historyBefore(messages, u + 1));
    },
    onDecide: async (message, tool, approve) => {
      if (!tool.approvalId) return;
      try {
        await api(`/v1/approvals/${encodeURIComponent(tool.approvalId)}`, {
          method: "POST",
          body: { approve, reason: approve ? "" : "denied in the web UI" },
        });
        const current = live.current;
        if (current && current.key === message.key) {
          current.draft = decideTool(current.draft, tool.id, approve);
          current.schedule();
        } else {
          setMessages((list) => list.map((m) => (m.key === message.key ? decideTool(m, tool.id, approve) : m)));
        }
      } catch (err) {
        toast(errorText(err), "error");
      }
    },
    onFeedback: async (message, rating, comment) => {
      if (!message.turnId) return;
      try {
        let feedback: Feedback | null = null;
        if (rating === null) {
          await api(`/v1/feedback/${encodeURIComponent(message.turnId)}`, { method: "DELETE" });
        } else {
          const body: Record<string, string> = { turn_id: message.turnId, rating };
          if (comment) body.comment = comment;
          feedback = await api<Feedback>("/v1/feedback", { method: "POST", body });
          feedback = { rating: feedback.rating ?? rating, comment: feedback.comment ?? comment ?? null };
          if (comment) toast(t("msg.feedbackSaved"), "success");
        }
        setMessages((list) => list.map((m) => (m.key === message.key ? { ...m, feedback } : m)));
      } catch (err) {
        toast(errorText(err), "error");
        throw err;
      }
    },
  };

  // --- list actions -----------------------------------------------------------------
  const rename = async (id: string, title: string): Promise<boolean> => {
    try {
      const header = await api<ConversationHeader>(`/v1/conversations/${encodeURIComponent(id)}`, {
        method: "PATCH",
        body: { title },
      });
      setConversations((list) => list.map((c) => (c.id === id ? { ...c, title: header?.title ?? title } : c)));
      return true;
    } catch (err) {
      toast(errorText(err), "error");
      return false;
    }
  };

  const remove = async (id: string): Promise<void> => {
    try {
      await api(`/v1/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
      setConversations((list) => list.filter((c) => c.id !== id));
      toast(t("chat.deleted"), "success");
      if (id === idRef.current) newChat();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  // --- voice calls -----------------------------------------------------------------
  const startCall = (): void => {
    if (streamingKey || !assistant || inVoice) return;
    setDrawer(false);
    setCalling(true);
  };

  // The call's conversation becomes the chat's route, without taking the user away from
  // another page they went to meanwhile (a call goes on there).
  const routeTo = (id: string): void => {
    setChatPath(`/chat/${id}`);
    if (activeRef.current) navigate(`/chat/${id}`, true);
  };

  // The call's conversation is known: list it and make it this page's (its turns load at the end).
  const callConversation = (id: string): void => {
    if (idRef.current !== id) {
      idRef.current = id;
      setConversationId(id);
      routeTo(id);
    }
    void refreshList();
  };

  // The panel is gone (the composer takes the focus back): open the call's conversation.
  const endCall = (id: string | null): void => {
    setCalling(false);
    if (!id) return;
    void load(id); // afresh: its turns were stored as they were spoken
    routeTo(id);
    void refreshList();
    setTimeout(() => void refreshList(), 2500); // a title may come a little later
  };

  // --- voice rooms: the panel asks for the room; our conversation in it is listed after --
  const startRoom = (): void => {
    if (streamingKey || !assistant || inVoice) return;
    setDrawer(false);
    setRooming(true);
  };

  const endRoom = (id: string | null): void => {
    setRooming(false);
    if (id) void refreshList();
  };

  // --- keyboard ---------------------------------------------------------------------
  useEffect(() => {
    if (!active || inVoice) return; // in a call or a room, Esc hangs up (the panel's own key)
    const onKey = (event: KeyboardEvent): void => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
        event.preventDefault();
        newChat();
      } else if (event.key === "Escape") {
        if (controller.current) {
          event.preventDefault();
          stop();
        } else if (drawer) {
          setDrawer(false);
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  // --- auto-scroll ------------------------------------------------------------------
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages, loading]);

  const onScroll = (): void => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    stick.current = atBottom;
    if (atBottom !== stuck) setStuck(atBottom);
  };

  const toBottom = (): void => {
    const el = scroller.current;
    if (!el) return;
    stick.current = true;
    setStuck(true);
    el.scrollTo({ top: el.scrollHeight, behavior: "smooth" });
  };

  const current = conversations.find((c) => c.id === conversationId);
  const title = current?.title || (conversationId ? t("chat.untitled") : t("chat.newChat"));
  const options = models ?? [];
  const pickerOptions = assistant && !options.includes(assistant) ? [assistant, ...options] : options;
  const streaming = streamingKey !== null;

  return (
    <div class="chat-page" hidden={!active}>
      {drawer && <div class="scrim" onClick={() => setDrawer(false)} aria-hidden="true" />}
      <ConversationList
        conversations={conversations}
        loading={listLoading}
        error={listError}
        activeId={conversationId}
        search={search}
        onSearch={setSearch}
        onNewChat={newChat}
        onRename={rename}
        onDelete={(id) => void remove(id)}
        onPick={() => setDrawer(false)}
        open={drawer}
      />
      <section class="chat-main" aria-label={t("chat.chat")}>
        <header class="chat-head">
          <button
            type="button"
            class="icon-btn drawer-btn"
            data-testid="drawer-toggle"
            aria-label={t("chat.conversations")}
            aria-expanded={drawer}
            aria-controls="conversations"
            onClick={() => setDrawer(!drawer)}
          >
            <Icon name="menu" />
          </button>
          <div class="picker">
            <label for="assistant-picker" class="sr-only">
              {t("chat.assistant")}
            </label>
            <Icon name="spark" size={16} />
            <select
              id="assistant-picker"
              data-testid="assistant-picker"
              value={assistant}
              disabled={!models || inVoice}
              onChange={(e) => pick(e.currentTarget.value)}
              title={t("chat.assistant")}
            >
              {pickerOptions.length === 0 && <option value="">{models ? t("chat.noAssistants") : t("common.loading")}</option>}
              {pickerOptions.map((id) => (
                <option key={id} value={id}>
                  {id}
                </option>
              ))}
            </select>
          </div>
          <h1 class="chat-title" title={title}>
            {title}
          </h1>
          <div class="call-slot">
            <button
              type="button"
              class={`icon-btn${calling ? " active" : ""}`}
              data-testid="call"
              disabled={!assistant || streaming || loading || inVoice}
              title={t("chat.call")}
              aria-label={t("chat.call")}
              onClick={startCall}
            >
              <Icon name="phone" />
            </button>
            <button
              type="button"
              class={`icon-btn${rooming ? " active" : ""}`}
              data-testid="room"
              disabled={!assistant || streaming || loading || inVoice}
              title={t("chat.room")}
              aria-label={t("chat.room")}
              onClick={startRoom}
            >
              <Icon name="users" />
            </button>
          </div>
        </header>
        {calling && (
          <CallPanel active={active} assistant={assistant} conversationId={conversationId} onConversation={callConversation} onClose={endCall} />
        )}
        {rooming && <RoomPanel active={active} assistant={assistant} onClose={endRoom} />}
        <div class="messages" ref={scroller} onScroll={onScroll} aria-live="polite" aria-relevant="additions" hidden={inVoice}>
          <div class="messages-inner">
            {modelsError && <ErrorBanner error={modelsError} />}
            {loadError && <ErrorBanner error={loadError} onRetry={conversationId ? () => void load(conversationId) : undefined} />}
            {loading && (
              <div class="loading-messages">
                <Skeleton lines={2} />
                <Skeleton lines={4} />
              </div>
            )}
            {!loading && !loadError && messages.length === 0 && (
              <div class="hero">
                <div class="hero-mark" aria-hidden="true">
                  <Icon name="spark" size={28} />
                </div>
                <h2>{t("chat.heroTitle")}</h2>
                <p class="muted">{assistant ? t("chat.heroBody", { assistant }) : t("chat.noAssistants")}</p>
              </div>
            )}
            {messages.map((message, index) => (
              <MessageView key={message.key} message={message} index={index} actions={actions} />
            ))}
          </div>
        </div>
        {!stuck && !inVoice && messages.length > 0 && (
          <button type="button" class="to-bottom" onClick={toBottom} aria-label={t("chat.toBottom")} title={t("chat.toBottom")}>
            <Icon name="arrowDown" size={16} />
          </button>
        )}
        <div class="composer-wrap" hidden={inVoice}>
          <Composer
            value={draft}
            onChange={setDraft}
            onSend={send}
            onStop={stop}
            streaming={streaming}
            disabled={!assistant || loading}
            focusKey={`${conversationId ?? "new"}${active ? "a" : ""}${calling ? "c" : ""}${rooming ? "r" : ""}`}
          />
          <p class="composer-hint muted">{t("chat.hint")}</p>
        </div>
      </section>
    </div>
  );
}

