/** The conversation list: new chat, search, rename, delete. A drawer on narrow screens. */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ConversationHeader } from "../api/types";
import { t } from "../i18n";
import { Skeleton } from "./Common";
import { Icon } from "./Icon";

function Item({
  conversation,
  active,
  onRename,
  onDelete,
  onPick,
}: {
  conversation: ConversationHeader;
  active: boolean;
  onRename: (title: string) => Promise<boolean>;
  onDelete: () => void;
  onPick: () => void;
}): JSX.Element {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const title = conversation.title || t("chat.untitled");
  useEffect(() => {
    if (editing) {
      input.current?.focus();
      input.current?.select();
    }
  }, [editing]);
  const save = async (): Promise<void> => {
    const value = draft.trim();
    if (!value || value === conversation.title) {
      setEditing(false);
      return;
    }
    if (await onRename(value.slice(0, 200))) setEditing(false);
  };
  return (
    <li class={`conv${active ? " active" : ""}`} data-testid="conversation" data-id={conversation.id}>
      {editing ? (
        <form
          class="conv-rename"
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          <input
            ref={input}
            data-testid="rename-input"
            aria-label={t("chat.title")}
            value={draft}
            maxLength={200}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Escape") {
                e.stopPropagation();
                setEditing(false);
              }
            }}
            onBlur={() => void save()}
          />
        </form>
      ) : (
        <>
          <a href={`#/chat/${encodeURIComponent(conversation.id)}`} class="conv-link" aria-current={active ? "page" : undefined} onClick={onPick} title={title}>
            <span class="conv-title">{title}</span>
            {conversation.assistant && <span class="conv-meta">{conversation.assistant}</span>}
          </a>
          <div class="conv-actions">
            <button
              type="button"
              class="icon-btn"
              data-testid="rename"
              aria-label={t("chat.rename", { title })}
              title={t("chat.renameShort")}
              onClick={() => {
                setDraft(conversation.title ?? "");
                setEditing(true);
              }}
            >
              <Icon name="edit" size={15} />
            </button>
            <button type="button" class="icon-btn danger" data-testid="delete" aria-label={t("chat.delete", { title })} title={t("chat.deleteShort")} onClick={onDelete}>
              <Icon name="trash" size={15} />
            </button>
          </div>
        </>
      )}
    </li>
  );
}

export function ConversationList({
  conversations,
  loading,
  error,
  activeId,
  search,
  onSearch,
  onNewChat,
  onRename,
  onDelete,
  onPick,
  open,
}: {
  conversations: ConversationHeader[];
  loading: boolean;
  error: string | null;
  activeId: string | null;
  search: string;
  onSearch: (q: string) => void;
  onNewChat: () => void;
  onRename: (id: string, title: string) => Promise<boolean>;
  onDelete: (id: string) => void;
  onPick: () => void;
  open: boolean;
}): JSX.Element {
  return (
    <aside id="conversations" class={`sidebar${open ? " open" : ""}`} aria-label={t("chat.conversations")}>
      <div class="sidebar-top">
        <button type="button" class="btn new-chat" data-testid="new-chat" onClick={onNewChat} title={t("chat.newChatHint")}>
          <Icon name="plus" size={16} /> {t("chat.newChat")}
          <kbd class="kbd">{/Mac|iPhone|iPad/.test(navigator.platform) ? "⌘K" : "Ctrl K"}</kbd>
        </button>
        <div class="search">
          <Icon name="search" size={15} />
          <input
            type="search"
            data-testid="conversation-search"
            aria-label={t("chat.search")}
            placeholder={t("chat.search")}
            value={search}
            onInput={(e) => onSearch(e.currentTarget.value)}
          />
        </div>
      </div>
      <nav class="conv-scroll" aria-label={t("chat.conversations")}>
        {loading && conversations.length === 0 ? (
          <Skeleton lines={6} />
        ) : error ? (
          <p class="side-note error-text">{error}</p>
        ) : conversations.length === 0 ? (
          <p class="side-note">{search ? t("chat.noMatches") : t("chat.noConversations")}</p>
        ) : (
          <ul class="conv-list">
            {conversations.map((c) => (
              <Item
                key={c.id}
                conversation={c}
                active={c.id === activeId}
                onRename={(title) => onRename(c.id, title)}
                onDelete={() => onDelete(c.id)}
                onPick={onPick}
              />
            ))}
          </ul>
        )}
      </nav>
    </aside>
  );
}
