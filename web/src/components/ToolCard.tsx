/** A tool call in a message: name, state, arguments, result, duration; approve or deny. */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { t } from "../i18n";
import type { ToolView } from "../lib/chat";
import { formatDuration, prettyJson } from "../lib/format";
import { Spinner } from "./Common";
import { Icon } from "./Icon";

const STATE_KEYS = {
  running: "tool.running",
  done: "tool.done",
  error: "tool.error",
  "awaiting-approval": "tool.awaiting",
  denied: "tool.denied",
} as const;

export function ToolCard({
  tool,
  onDecide,
}: {
  tool: ToolView;
  onDecide?: (tool: ToolView, approve: boolean) => Promise<void>;
}): JSX.Element {
  const [busy, setBusy] = useState(false);
  const awaiting = tool.state === "awaiting-approval";
  const [open, setOpen] = useState(false);
  const decide = async (approve: boolean): Promise<void> => {
    if (!onDecide) return;
    setBusy(true);
    try {
      await onDecide(tool, approve);
    } finally {
      setBusy(false);
    }
  };
  const args = prettyJson(tool.arguments || "{}");
  return (
    <div class={`tool-card state-${tool.state}`} data-testid="tool-card" data-tool={tool.name} data-state={tool.state}>
      <button
        type="button"
        class="tool-head"
        aria-expanded={open || awaiting}
        onClick={() => setOpen(!open)}
      >
        <span class="tool-icon">
          {tool.state === "running" ? <Spinner /> : <Icon name="tool" size={15} />}
        </span>
        <span class="tool-name">{tool.name}</span>
        <span class={`badge ${tool.state}`}>{t(STATE_KEYS[tool.state])}</span>
        {tool.durationMs !== undefined && <span class="tool-time">{formatDuration(tool.durationMs)}</span>}
        <Icon name="chevron" size={14} class={`chev${open || awaiting ? " open" : ""}`} />
      </button>
      {(open || awaiting) && (
        <div class="tool-body">
          <div class="tool-section">
            <div class="tool-label">{t("tool.arguments")}</div>
            <pre class="tool-pre" tabIndex={0}>{args}</pre>
          </div>
          {tool.result !== undefined && (
            <div class="tool-section">
              <div class="tool-label">{t("tool.result")}</div>
              <pre class={`tool-pre${tool.isError ? " is-error" : ""}`} tabIndex={0}>
                {tool.result}
              </pre>
            </div>
          )}
        </div>
      )}
      {awaiting && (
        <div class="tool-approval">
          <span>{t("tool.approvalPrompt", { name: tool.name })}</span>
          <div class="tool-actions">
            <button type="button" class="btn small primary" data-testid="approve" disabled={busy} onClick={() => void decide(true)}>
              <Icon name="check" size={14} /> {t("tool.approve")}
            </button>
            <button type="button" class="btn small" data-testid="deny" disabled={busy} onClick={() => void decide(false)}>
              <Icon name="x" size={14} /> {t("tool.deny")}
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
