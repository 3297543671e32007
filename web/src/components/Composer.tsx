/** The message box: Enter sends, Shift+Enter breaks the line; a stop button while streaming. */
import type { JSX } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { t } from "../i18n";
import { Icon } from "./Icon";

export function Composer({
  value,
  onChange,
  onSend,
  onStop,
  streaming,
  disabled,
  focusKey,
}: {
  value: string;
  onChange: (value: string) => void;
  onSend: () => void;
  onStop: () => void;
  streaming: boolean;
  disabled: boolean;
  /** Changes when the composer should take the focus (new chat, conversation switch). */
  focusKey: string;
}): JSX.Element {
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (window.matchMedia?.("(pointer: fine)").matches) area.current?.focus();
  }, [focusKey]);
  const lines = value.split("\n").length;
  const canSend = value.trim().length > 0 && !disabled && !streaming;
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        if (canSend) onSend();
      }}
    >
      <label class="sr-only" for="composer">
        {t("chat.message")}
      </label>
      <textarea
        id="composer"
        ref={area}
        data-testid="composer"
        rows={Math.min(8, Math.max(1, lines))}
        placeholder={t("chat.placeholder")}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
            e.preventDefault();
            if (canSend) onSend();
          }
        }}
      />
      {streaming ? (
        <button type="button" class="send-btn stop" data-testid="stop" aria-label={t("chat.stop")} title={t("chat.stopHint")} onClick={onStop}>
          <Icon name="stop" size={16} />
        </button>
      ) : (
        <button type="submit" class="send-btn" data-testid="send" aria-label={t("chat.send")} title={t("chat.send")} disabled={!canSend}>
          <Icon name="send" size={18} />
        </button>
      )}
    </form>
  );
}
