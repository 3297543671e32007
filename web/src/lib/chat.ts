/**
 * The chat's message model and how it changes: stream chunks fold into the assistant's
 * message (`applyChunk`), a stored conversation becomes messages (`fromConversation`, each
 * answer with its turn's stored `citations`), and a branch's history is the messages before a
 * point (`historyBefore`). Pure functions only.
 */
import type {
  ChatChunk,
  Citation,
  Conversation,
  Feedback,
  Sentiment,
  StoredMessage,
  StoredToolRun,
} from "../api/types";

export type ToolState = "running" | "done" | "error" | "awaiting-approval" | "denied";

export interface ToolView {
  id: string;
  name: string;
  arguments: string;
  state: ToolState;
  result?: string;
  isError?: boolean;
  durationMs?: number;
  approvalId?: string;
  /** The user's answer to an approval, once given. */
  decided?: "approved" | "denied";
}

export type Part = { kind: "text"; text: string } | { kind: "tool"; tool: ToolView };

export interface ChatMessage {
  key: string;
  role: "user" | "assistant";
  parts: Part[];
  turnId?: string;
  sentiment?: Sentiment;
  citations: Citation[];
  retrieved: Citation[];
  streaming?: boolean;
  error?: string;
  stopped?: boolean;
  escalation?: string;
  finishReason?: string | null;
  feedback?: Feedback | null;
}

export interface ChunkEffects {
  conversationId?: string;
  turnId?: string;
  sentiment?: Sentiment;
  error?: string;
}

let counter = 0;
/** A key for a message made in this page. */
export function newKey(prefix = "m"): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}`;
}

export function userMessage(text: string, key = newKey("u")): ChatMessage {
  return { key, role: "user", parts: [{ kind: "text", text }], citations: [], retrieved: [] };
}

export function assistantMessage(key = newKey("a")): ChatMessage {
  return { key, role: "assistant", parts: [], citations: [], retrieved: [], streaming: true };
}

/** The text of a message (its text parts, in order). */
export function messageText(message: ChatMessage): string {
  return message.parts
    .filter((p): p is { kind: "text"; text: string } => p.kind === "text")
    .map((p) => p.text)
    .join("\n\n");
}

/** How a tool result says the user did not approve the call (graft.agent). */
const DENIED = /^(error: )?the user did not approve/;
/** How the server records a turn the user stopped (graft.turn). */
const STOPPED = /client went away|turn was cancelled/;

function withText(parts: Part[], text: string): Part[] {
  const last = parts[parts.length - 1];
  if (last?.kind === "text") return [...parts.slice(0, -1), { kind: "text", text: last.text + text }];
  return [...parts, { kind: "text", text }];
}

function withTool(parts: Part[], id: string, update: (tool: ToolView | undefined) => ToolView): Part[] {
  const index = parts.findIndex((p) => p.kind === "tool" && p.tool.id === id);
  if (index < 0) return [...parts, { kind: "tool", tool: update(undefined) }];
  const current = parts[index] as { kind: "tool"; tool: ToolView };
  const next = parts.slice();
  next[index] = { kind: "tool", tool: update(current.tool) };
  return next;
}

function mergeCitations(old: Citation[], added: Citation[]): Citation[] {
  const byNumber = new Map(old.map((c) => [c.n, c]));
  for (const c of added) byNumber.set(c.n, c);
  return [...byNumber.values()].sort((a, b) => a.n - b.n);
}

function citationsOf(data: unknown): Citation[] {
  if (!data || typeof data !== "object") return [];
  const list = (data as { citations?: unknown }).citations;
  return Array.isArray(list) ? (list as Citation[]).filter((c) => typeof c?.n === "number") : [];
}

/** Fold one stream chunk into the assistant's message; also say what else it told. */
export function applyChunk(message: ChatMessage, chunk: ChatChunk): [ChatMessage, ChunkEffects] {
  const effects: ChunkEffects = {};
  let next = message;
  if (chunk.conversation_id) effects.conversationId = chunk.conversation_id;
  if (chunk.turn_id) {
    effects.turnId = chunk.turn_id;
    next = { ...next, turnId: chunk.turn_id };
  }
  if (chunk.error) {
    const text = chunk.error.message || chunk.error.type || "error";
    effects.error = text;
    return [{ ...next, error: text }, effects];
  }
  for (const choice of chunk.choices ?? []) {
    const text = choice.delta?.content;
    if (text) next = { ...next, parts: withText(next.parts, text) };
    if (choice.finish_reason) next = { ...next, finishReason: choice.finish_reason };
  }
  const event = chunk.graft;
  if (!event) return [next, effects];
  switch (event.event) {
    case "approval_required":
      next = {
        ...next,
        parts: withTool(next.parts, event.call_id, (tool) => ({
          ...(tool ?? { id: event.call_id, name: event.name, arguments: event.arguments }),
          state: "awaiting-approval",
          approvalId: event.id,
        })),
      };
      break;
    case "tool_call":
      next = {
        ...next,
        parts: withTool(next.parts, event.id, (tool) => ({
          ...(tool ?? { id: event.id, name: event.name, arguments: event.arguments }),
          state: tool?.decided === "denied" ? "denied" : "running",
        })),
      };
      break;
    case "tool_result": {
      next = {
        ...next,
        parts: withTool(next.parts, event.id, (tool) => {
          const base = tool ?? { id: event.id, name: event.name, arguments: "", state: "running" };
          const denied =
            base.decided === "denied" ||
            (base.approvalId !== undefined && DENIED.test(event.content));
          return {
            ...base,
            result: event.content,
            isError: event.is_error,
            durationMs: event.duration_ms,
            state: denied ? "denied" : event.is_error ? "error" : "done",
          };
        }),
      };
      const found = citationsOf(event.data);
      if (found.length) next = { ...next, retrieved: mergeCitations(next.retrieved, found) };
      break;
    }
    case "sentiment":
      effects.sentiment = {
        label: event.label,
        score: event.score,
        emotion: event.emotion ?? null,
        backend: event.backend ?? "",
      };
      break;
    case "escalation":
      next = { ...next, escalation: event.reason };
      break;
    case "citations":
      if (event.stage === "cited") {
        next = { ...next, citations: mergeCitations(next.citations, event.citations) };
      } else {
        next = { ...next, retrieved: mergeCitations(next.retrieved, event.citations) };
      }
      break;
  }
  return [next, effects];
}

/**
 * The user answered an approval: the card shows it at once. The stream may already have
 * told how the call went (it goes on as soon as the server has the answer), so only a card
 * still waiting changes its state.
 */
export function decideTool(message: ChatMessage, callId: string, approved: boolean): ChatMessage {
  return {
    ...message,
    parts: withTool(message.parts, callId, (tool) => {
      const base = tool ?? { id: callId, name: "", arguments: "", state: "awaiting-approval" as const };
      const waiting = base.state === "awaiting-approval";
      return {
        ...base,
        decided: approved ? "approved" : "denied",
        state: waiting ? (approved ? "running" : "denied") : base.state,
      };
    }),
  };
}

/** The message is done streaming (finished, stopped or failed). */
export function finish(message: ChatMessage, how: { stopped?: boolean; error?: string } = {}): ChatMessage {
  const next: ChatMessage = { ...message, streaming: false };
  if (how.stopped) next.stopped = true;
  if (how.error) next.error = how.error;
  next.parts = next.parts.map((p) =>
    p.kind === "tool" && (p.tool.state === "running" || p.tool.state === "awaiting-approval")
      ? { kind: "tool", tool: { ...p.tool, state: how.error ? "error" : p.tool.state === "running" ? "error" : "denied" } }
      : p,
  );
  return next;
}

function contentText(content: StoredMessage["content"]): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? "").join("");
  return "";
}

function toolFromRun(run: StoredToolRun): ToolView {
  const denied = run.is_error && DENIED.test(run.result);
  return {
    id: run.call_id,
    name: run.name,
    arguments: run.arguments,
    result: run.result,
    isError: run.is_error,
    durationMs: run.duration_ms,
    state: denied ? "denied" : run.is_error ? "error" : "done",
  };
}

/** A stored conversation as the chat shows it: one assistant message per turn. */
export function fromConversation(conversation: Conversation): ChatMessage[] {
  const turns = new Map(conversation.turns.map((t) => [t.id, t]));
  const out: ChatMessage[] = [];
  const answers = new Map<string, ChatMessage>();
  const placed = new Set<string>();
  conversation.messages.forEach((stored, index) => {
    if (stored.role === "system" || stored.role === "tool") return;
    if (stored.role === "user") {
      const message = userMessage(contentText(stored.content), `s${index}`);
      message.turnId = stored.turn_id;
      if (stored.sentiment) message.sentiment = stored.sentiment;
      out.push(message);
      return;
    }
    let answer = answers.get(stored.turn_id);
    if (!answer) {
      answer = { key: `s${index}`, role: "assistant", parts: [], citations: [], retrieved: [], turnId: stored.turn_id };
      answers.set(stored.turn_id, answer);
      out.push(answer);
    }
    const runs = new Map((turns.get(stored.turn_id)?.tool_runs ?? []).map((r) => [r.call_id, r]));
    for (const call of stored.tool_calls ?? []) {
      const run = runs.get(call.id);
      placed.add(call.id);
      answer.parts.push({
        kind: "tool",
        tool: run
          ? toolFromRun(run)
          : { id: call.id, name: call.function.name, arguments: call.function.arguments, state: "done" },
      });
    }
    const text = contentText(stored.content);
    if (text) {
      const last = answer.parts[answer.parts.length - 1];
      answer.parts = withText(answer.parts, last?.kind === "text" ? `\n\n${text}` : text);
    }
  });
  // Turns whose answer is missing (failed, cancelled) or whose tool runs were not in a message.
  for (const turn of conversation.turns) {
    let answer = answers.get(turn.id);
    const loose = turn.tool_runs.filter((r) => !placed.has(r.call_id));
    if (!answer && (turn.error || loose.length)) {
      answer = { key: `t${turn.id}`, role: "assistant", parts: [], citations: [], retrieved: [], turnId: turn.id };
      answers.set(turn.id, answer);
      const userIndex = out.map((m) => m.turnId).lastIndexOf(turn.id);
      out.splice(userIndex < 0 ? out.length : userIndex + 1, 0, answer);
    }
    if (!answer) continue;
    if (loose.length) answer.parts = [...loose.map((r): Part => ({ kind: "tool", tool: toolFromRun(r) })), ...answer.parts];
    if (turn.error && turn.status !== "done") {
      if (STOPPED.test(turn.error)) answer.stopped = true;
      else answer.error = turn.error;
    }
    answer.finishReason = turn.finish_reason;
    answer.feedback = turn.feedback ?? null;
    // The passages the answer cited, stored with the turn: the same footnotes as the live
    // `citations` event (stage "cited") gave.
    const cited = citationsOf(turn);
    if (cited.length) answer.citations = mergeCitations(answer.citations, cited);
  }
  return out;
}

/** The OpenAI messages before `index` (text only): the history of a new branch. */
export function historyBefore(
  messages: readonly ChatMessage[],
  index: number,
): Array<{ role: "user" | "assistant"; content: string }> {
  const history: Array<{ role: "user" | "assistant"; content: string }> = [];
  for (const message of messages.slice(0, index)) {
    const content = messageText(message);
    if (!content.trim()) continue;
    history.push({ role: message.role, content });
  }
  return history;
}
