/**
 * One chat message. User: plain text, sentiment marker, edit. Assistant: markdown and tool
 * cards in the order they came, citations (footnotes with a preview, sources below),
 * errors, copy, regenerate and thumbs with an optional comment.
 */
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Citation, Feedback } from "../api/types";
import { t } from "../i18n";
import { type ChatMessage, type ToolView, messageText } from "../lib/chat";
import { citationHref, isExternal } from "../lib/links";
import { renderMarkdown } from "../lib/markdown";
import { copyText } from "./Common";
import { Icon } from "./Icon";
import { ToolCard } from "./ToolCard";

export interface MessageActions {
  onEdit: (index: number, text: string) => void;
  onRegenerate: (index: number) => void;
  onDecide: (message: ChatMessage, tool: ToolView, approve: boolean) => Promise<void>;
  onFeedback: (message: ChatMessage, rating: Feedback["rating"] | null, comment?: string) => Promise<void>;
  busy: boolean;
}

function Markdown({ text, citations }: { text: string; citations: Citation[] }): JSX.Element {
  const html = useMemo(
    () => renderMarkdown(text, { citations, copyLabel: t("common.copy") }),
    [text, citations],
  );
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    // A code block scrolls sideways: it takes the focus, so the keyboard can scroll it.
    for (const pre of Array.from(ref.current?.querySelectorAll("pre") ?? [])) pre.tabIndex = 0;
  }, [html]);
  return <div ref={ref} class="md" dangerouslySetInnerHTML={{ __html: html }} />;
}

const SENTIMENT_GLYPH: Record<string, string> = { positive: "+", negative: "−", neutral: "·" };

function SentimentMarker({ message }: { message: ChatMessage }): JSX.Element | null {
  const s = message.sentiment;
  if (!s) return null;
  const label = t(`sentiment.${s.label}` as "sentiment.positive") || s.label;
  const title = t("sentiment.title", {
    label,
    score: Math.round(s.score * 100),
    emotion: s.emotion ? ` · ${s.emotion}` : "",
  });
  return (
    <span class={`sentiment ${s.label}`} data-testid="sentiment" data-label={s.label} title={title} aria-label={title} role="img">
      {SENTIMENT_GLYPH[s.label] ?? "?"}
    </span>
  );
}

function Preview({ citation, anchor }: { citation: Citation; anchor: DOMRect }): JSX.Element {
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = Math.min(360, window.innerWidth - 16);
    const left = Math.max(8, Math.min(anchor.left - 24, window.innerWidth - width - 8));
    const below = anchor.bottom + 8;
    const top = below + el.offsetHeight > window.innerHeight && anchor.top > el.offsetHeight + 16
      ? anchor.top - el.offsetHeight - 8
      : below;
    // CSSOM, not a style attribute: allowed by the page's CSP.
    el.style.setProperty("left", `${left}px`);
    el.style.setProperty("top", `${top}px`);
    el.style.setProperty("width", `${width}px`);
  });
  const snippet = (citation.snippet ?? citation.text ?? "").trim();
  const where = [citation.collection, citation.section, citation.page ? t("cite.page", { page: citation.page }) : ""]
    .filter(Boolean)
    .join(" · ");
  return (
    <div ref={ref} class="cite-preview" data-testid="citation-preview" role="tooltip">
      <div class="cite-title">
        <span class="cite-n">{citation.n}</span> {citation.title || citation.source}
      </div>
      {where && <div class="cite-where">{where}</div>}
      {snippet && <p class="cite-snippet">{snippet.length > 320 ? `${snippet.slice(0, 320)}…` : snippet}</p>}
      {citation.source && <div class="cite-source">{citation.source}</div>}
    </div>
  );
}

function Sources({ citations }: { citations: Citation[] }): JSX.Element {
  return (
    <div class="sources">
      <div class="sources-title">{t("cite.sources")}</div>
      <ol>
        {citations.map((c) => {
          const href = citationHref(c);
          const external = isExternal(href);
          return (
            <li key={c.n} value={c.n}>
              <a href={href} target={external ? "_blank" : undefined} rel={external ? "noopener noreferrer" : undefined}>
                {c.title || c.source || c.document_id}
              </a>
              {c.collection && <span class="muted"> · {c.collection}</span>}
            </li>
          );
        })}
      </ol>
    </div>
  );
}

function FeedbackBar({ message, actions }: { message: ChatMessage; actions: MessageActions }): JSX.Element {
  const rating = message.feedback?.rating ?? null;
  const [commenting, setCommenting] = useState(false);
  const [comment, setComment] = useState(message.feedback?.comment ?? "");
  const [sent, setSent] = useState(false);
  const disabled = !message.turnId || message.streaming;
  const rate = async (value: Feedback["rating"]): Promise<void> => {
    if (rating === value) {
      await actions.onFeedback(message, null);
      setCommenting(false);
      return;
    }
    await actions.onFeedback(message, value);
    setSent(false);
    setCommenting(true);
  };
  return (
    <>
      <button
        type="button"
        class={`icon-btn${rating === "up" ? " active" : ""}`}
        data-testid="thumb-up"
        aria-label={t("msg.good")}
        title={t("msg.good")}
        aria-pressed={rating === "up"}
        disabled={disabled}
        onClick={() => void rate("up")}
      >
        <Icon name="up" size={16} />
      </button>
      <button
        type="button"
        class={`icon-btn${rating === "down" ? " active" : ""}`}
        data-testid="thumb-down"
        aria-label={t("msg.bad")}
        title={t("msg.bad")}
        aria-pressed={rating === "down"}
        disabled={disabled}
        onClick={() => void rate("down")}
      >
        <Icon name="down" size={16} />
      </button>
      {commenting && rating && (
        <form
          class="feedback-form"
          onSubmit={(event) => {
            event.preventDefault();
            void actions.onFeedback(message, rating, comment.trim()).then(() => {
              setSent(true);
              setCommenting(false);
            });
          }}
        >
          <label class="sr-only" for={`fb-${message.key}`}>{t("msg.commentLabel")}</label>
          <textarea
            id={`fb-${message.key}`}
            data-testid="feedback-comment"
            rows={2}
            maxLength={4000}
            placeholder={rating === "up" ? t("msg.commentPlaceholderUp") : t("msg.commentPlaceholderDown")}
            value={comment}
            onInput={(e) => setComment(e.currentTarget.value)}
          />
          <div class="feedback-actions">
            <button type="button" class="btn small ghost" onClick={() => setCommenting(false)}>
              {t("common.cancel")}
            </button>
            <button type="submit" class="btn small primary" data-testid="feedback-submit">
              {t("msg.sendFeedback")}
            </button>
          </div>
        </form>
      )}
      {sent && !commenting && <span class="muted small">{t("msg.thanks")}</span>}
    </>
  );
}

function UserMessage({ message, index, actions }: { message: ChatMessage; index: number; actions: MessageActions }): JSX.Element {
  const text = messageText(message);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(text);
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (editing) area.current?.focus();
  }, [editing]);
  const save = (): void => {
    const value = draft.trim();
    if (!value) return;
    setEditing(false);
    actions.onEdit(index, value);
  };
  return (
    <div class="msg user" data-testid="message" data-role="user">
      {editing ? (
        <form
          class="edit-form"
          onSubmit={(e) => {
            e.preventDefault();
            save();
          }}
        >
          <label class="sr-only" for={`edit-${message.key}`}>{t("msg.editLabel")}</label>
          <textarea
            id={`edit-${message.key}`}
            ref={area}
            data-testid="edit-input"
            value={draft}
            rows={Math.min(10, Math.max(2, draft.split("\n").length))}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                save();
              } else if (e.key === "Escape") {
                e.stopPropagation();
                setEditing(false);
              }
            }}
          />
          <div class="edit-actions">
            <span class="muted small">{t("msg.editHint")}</span>
            <button type="button" class="btn small ghost" onClick={() => setEditing(false)}>
              {t("common.cancel")}
            </button>
            <button type="submit" class="btn small primary" data-testid="edit-submit">
              {t("msg.saveAndSend")}
            </button>
          </div>
        </form>
      ) : (
        <div class="bubble">
          <div class="user-text">{text}</div>
        </div>
      )}
      {!editing && (
        <div class="msg-actions">
          <SentimentMarker message={message} />
          <button
            type="button"
            class="icon-btn"
            data-testid="edit"
            aria-label={t("msg.edit")}
            title={t("msg.edit")}
            disabled={actions.busy}
            onClick={() => {
              setDraft(text);
              setEditing(true);
            }}
          >
            <Icon name="edit" size={16} />
          </button>
          <CopyButton text={text} />
        </div>
      )}
    </div>
  );
}

function CopyButton({ text }: { text: string }): JSX.Element {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="icon-btn"
      aria-label={t("common.copy")}
      title={done ? t("common.copied") : t("common.copy")}
      onClick={() =>
        void copyText(text).then((ok) => {
          if (!ok) return;
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        })
      }
    >
      <Icon name={done ? "check" : "copy"} size={16} />
    </button>
  );
}

function AssistantMessage({ message, index, actions }: { message: ChatMessage; index: number; actions: MessageActions }): JSX.Element {
  const body = useRef<HTMLDivElement>(null);
  const [preview, setPreview] = useState<{ citation: Citation; rect: DOMRect } | null>(null);
  const citations = message.citations;

  useEffect(() => {
    const el = body.current;
    if (!el) return;
    const byNumber = new Map(citations.map((c) => [String(c.n), c]));
    const show = (event: Event): void => {
      const a = (event.target as Element | null)?.closest?.("a[data-testid='citation']");
      if (!a) return;
      const citation = byNumber.get(a.getAttribute("data-n") ?? "");
      if (citation) setPreview({ citation, rect: a.getBoundingClientRect() });
    };
    const hide = (event: Event): void => {
      const a = (event.target as Element | null)?.closest?.("a[data-testid='citation']");
      if (a) setPreview(null);
    };
    // The preview hides with Escape, the focus staying on the footnote (WCAG 1.4.13).
    const key = (event: KeyboardEvent): void => {
      if (event.key === "Escape" && (event.target as Element | null)?.closest?.("a[data-testid='citation']")) setPreview(null);
    };
    const click = (event: MouseEvent): void => {
      const button = (event.target as Element | null)?.closest?.("button[data-copy]");
      if (!button) return;
      const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
      void copyText(code).then((ok) => {
        if (!ok) return;
        button.textContent = t("common.copied");
        setTimeout(() => {
          button.textContent = t("common.copy");
        }, 1500);
      });
    };
    el.addEventListener("mouseover", show);
    el.addEventListener("focusin", show);
    el.addEventListener("mouseout", hide);
    el.addEventListener("focusout", hide);
    el.addEventListener("click", click);
    el.addEventListener("keydown", key);
    return () => {
      el.removeEventListener("keydown", key);
      el.removeEventListener("mouseover", show);
      el.removeEventListener("focusin", show);
      el.removeEventListener("mouseout", hide);
      el.removeEventListener("focusout", hide);
      el.removeEventListener("click", click);
    };
  }, [citations]);

  const text = messageText(message);
  const empty = message.parts.length === 0;
  return (
    <div class="msg assistant" data-testid="message" data-role="assistant" data-streaming={message.streaming ? "true" : undefined} aria-busy={message.streaming ? "true" : undefined}>
      <div class="avatar" aria-hidden="true">
        <Icon name="spark" size={16} />
      </div>
      <div class="msg-main">
        <div class="msg-body" ref={body}>
          {empty && message.streaming && (
            <div class="typing" aria-label={t("msg.thinking")}>
              <span />
              <span />
              <span />
            </div>
          )}
          {message.parts.map((part, i) =>
            part.kind === "text" ? (
              <Markdown key={`t${i}`} text={part.text} citations={citations} />
            ) : (
              <ToolCard key={part.tool.id} tool={part.tool} onDecide={(tool, approve) => actions.onDecide(message, tool, approve)} />
            ),
          )}
          {message.streaming && !empty && <span class="caret" aria-hidden="true" />}
        </div>
        {preview && <Preview citation={preview.citation} anchor={preview.rect} />}
        {message.escalation && (
          <div class="banner warn" role="status">
            {t("msg.escalated", { reason: message.escalation })}
          </div>
        )}
        {message.error && (
          <div class="banner error" role="alert">
            {message.error}
          </div>
        )}
        {message.stopped && <div class="note">{t("msg.stopped")}</div>}
        {citations.length > 0 && <Sources citations={citations} />}
        {!message.streaming && (
          <div class="msg-actions">
            {text && <CopyButton text={text} />}
            <button
              type="button"
              class="icon-btn"
              data-testid="regenerate"
              aria-label={t("msg.regenerate")}
              title={t("msg.regenerate")}
              disabled={actions.busy}
              onClick={() => actions.onRegenerate(index)}
            >
              <Icon name="refresh" size={16} />
            </button>
            <FeedbackBar message={message} actions={actions} />
          </div>
        )}
      </div>
    </div>
  );
}

export function MessageView(props: { message: ChatMessage; index: number; actions: MessageActions }): JSX.Element {
  return props.message.role === "user" ? <UserMessage {...props} /> : <AssistantMessage {...props} />;
}
