import { describe, expect, it } from "vitest";
import type { ChatChunk, Citation, Conversation } from "../src/api/types";
import {
  type ChatMessage,
  applyChunk,
  assistantMessage,
  decideTool,
  finish,
  fromConversation,
  historyBefore,
  messageText,
  userMessage,
} from "../src/lib/chat";

function fold(chunks: ChatChunk[]): [ChatMessage, Record<string, unknown>] {
  let message = assistantMessage("a");
  const effects: Record<string, unknown> = {};
  for (const chunk of chunks) {
    const [next, fx] = applyChunk(message, chunk);
    message = next;
    Object.assign(effects, fx);
  }
  return [message, effects];
}

const text = (content: string): ChatChunk => ({ choices: [{ index: 0, delta: { content }, finish_reason: null }] });

describe("applyChunk", () => {
  it("collects text and the conversation and turn ids", () => {
    const [m, fx] = fold([
      { conversation_id: "c1", turn_id: "t1", choices: [{ index: 0, delta: { role: "assistant", content: "" } }] },
      text("Hel"),
      text("lo"),
      { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    ]);
    expect(messageText(m)).toBe("Hello");
    expect(m.turnId).toBe("t1");
    expect(m.finishReason).toBe("stop");
    expect(fx).toMatchObject({ conversationId: "c1", turnId: "t1" });
  });

  it("puts tool cards between text, in order, and follows their state", () => {
    const [m] = fold([
      text("Let me look. "),
      { graft: { event: "tool_call", id: "k1", name: "search", arguments: '{"q":"x"}' } },
      { graft: { event: "tool_result", id: "k1", name: "search", content: "found", is_error: false, duration_ms: 12 } },
      text("Found it."),
    ]);
    expect(m.parts.map((p) => p.kind)).toEqual(["text", "tool", "text"]);
    const tool = m.parts[1];
    expect(tool?.kind === "tool" && tool.tool).toMatchObject({ state: "done", result: "found", durationMs: 12 });
  });

  it("marks failed tools", () => {
    const [m] = fold([
      { graft: { event: "tool_call", id: "k1", name: "sql", arguments: "{}" } },
      { graft: { event: "tool_result", id: "k1", name: "sql", content: "boom", is_error: true, duration_ms: 1 } },
    ]);
    expect(m.parts[0]?.kind === "tool" && m.parts[0].tool.state).toBe("error");
  });

  it("asks for approval, then runs or stays denied", () => {
    const ask: ChatChunk = { graft: { event: "approval_required", id: "ap1", call_id: "k1", name: "send_mail", arguments: "{}", timeout: 60 } };
    let [m] = fold([ask]);
    expect(m.parts[0]?.kind === "tool" && m.parts[0].tool).toMatchObject({ state: "awaiting-approval", approvalId: "ap1" });

    m = decideTool(m, "k1", false);
    [m] = applyChunk(m, { graft: { event: "tool_call", id: "k1", name: "send_mail", arguments: "{}" } });
    [m] = applyChunk(m, {
      graft: { event: "tool_result", id: "k1", name: "send_mail", content: "the user did not approve this call (denied)", is_error: true, duration_ms: 0 },
    });
    expect(m.parts[0]?.kind === "tool" && m.parts[0].tool.state).toBe("denied");

    let [ok] = fold([ask]);
    ok = decideTool(ok, "k1", true);
    [ok] = applyChunk(ok, { graft: { event: "tool_call", id: "k1", name: "send_mail", arguments: "{}" } });
    expect(ok.parts[0]?.kind === "tool" && ok.parts[0].tool.state).toBe("running");
  });

  it("keeps the outcome when the stream told it before the approval call returned", () => {
    let [m] = fold([
      { graft: { event: "approval_required", id: "ap1", call_id: "k1", name: "send_mail", arguments: "{}", timeout: 60 } },
      { graft: { event: "tool_call", id: "k1", name: "send_mail", arguments: "{}" } },
      { graft: { event: "tool_result", id: "k1", name: "send_mail", content: "sent", is_error: false, duration_ms: 3 } },
    ]);
    m = finish(decideTool(m, "k1", true));
    expect(m.parts[0]?.kind === "tool" && m.parts[0].tool.state).toBe("done");
  });

  it("reads a denial in a tool result with the error prefix", () => {
    let [m] = fold([{ graft: { event: "approval_required", id: "ap1", call_id: "k1", name: "x", arguments: "{}", timeout: 1 } }]);
    [m] = applyChunk(m, { graft: { event: "tool_call", id: "k1", name: "x", arguments: "{}" } });
    [m] = applyChunk(m, {
      graft: { event: "tool_result", id: "k1", name: "x", content: "error: the user did not approve this call (timed out)", is_error: true, duration_ms: 0 },
    });
    expect(m.parts[0]?.kind === "tool" && m.parts[0].tool.state).toBe("denied");
  });

  it("shows an error line and reports the sentiment, citations and escalation", () => {
    const [m, fx] = fold([
      { graft: { event: "sentiment", label: "negative", score: 0.9, emotion: "anger", backend: "lexicon" } },
      { graft: { event: "escalation", reason: "angry user", negative_in_a_row: 3 } },
      {
        graft: {
          event: "citations",
          stage: "cited",
          citations: [{ n: 2, document_id: "d", chunk_id: "c", link: "/v1/knowledge/documents/d#chunk-c" }],
        },
      },
      { error: { message: "model unavailable", type: "server_error" } },
    ]);
    expect(fx.sentiment).toMatchObject({ label: "negative" });
    expect(m.escalation).toBe("angry user");
    expect(m.citations.map((c) => c.n)).toEqual([2]);
    expect(m.error).toBe("model unavailable");
  });

  it("finishes a stopped message and closes running tools", () => {
    const [m] = fold([{ graft: { event: "tool_call", id: "k", name: "slow", arguments: "{}" } }]);
    const done = finish(m, { stopped: true });
    expect(done.streaming).toBe(false);
    expect(done.stopped).toBe(true);
    expect(done.parts[0]?.kind === "tool" && done.parts[0].tool.state).not.toBe("running");
  });
});

describe("stored conversations", () => {
  const conversation: Conversation = {
    id: "c1",
    title: "T",
    assistant: "helper",
    created_at: "",
    updated_at: "",
    messages: [
      { role: "user", content: "hi", turn_id: "t1", created_at: "", sentiment: { label: "positive", score: 0.8 } },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "k1", type: "function", function: { name: "clock", arguments: "{}" } }],
        turn_id: "t1",
        created_at: "",
      },
      { role: "tool", content: "12:00", tool_call_id: "k1", turn_id: "t1", created_at: "" },
      { role: "assistant", content: "It is noon.", turn_id: "t1", created_at: "" },
      { role: "user", content: "and?", turn_id: "t2", created_at: "" },
    ],
    turns: [
      {
        id: "t1",
        status: "done",
        model: "m",
        finish_reason: "stop",
        error: null,
        duration_ms: 5,
        tool_runs: [{ call_id: "k1", name: "clock", arguments: "{}", result: "12:00", is_error: false, duration_ms: 3 }],
        feedback: { rating: "up", comment: null },
      },
      { id: "t2", status: "failed", model: "m", finish_reason: "error", error: "model down", duration_ms: 1, tool_runs: [] },
    ],
  };

  it("become one answer per turn with tools, sentiment, feedback and errors", () => {
    const messages = fromConversation(conversation);
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(messages[0]?.sentiment?.label).toBe("positive");
    const answer = messages[1];
    expect(answer?.parts.map((p) => p.kind)).toEqual(["tool", "text"]);
    expect(answer?.parts[0]?.kind === "tool" && answer.parts[0].tool).toMatchObject({ state: "done", result: "12:00" });
    expect(answer?.feedback?.rating).toBe("up");
    expect(answer?.turnId).toBe("t1");
    expect(messages[3]?.error).toBe("model down");
  });

  it("give an answer the footnotes its turn cited, as the live event did", () => {
    const cited: Citation[] = [
      { n: 2, document_id: "d1", chunk_id: 7, link: "/v1/knowledge/documents/d1#chunk-7", title: "Leave", text: "ten days" },
      { n: 1, document_id: "d1", chunk_id: 3, link: "/v1/knowledge/documents/d1#chunk-3", title: "Leave", text: "paid" },
    ];
    const turn = { ...conversation.turns[0]!, citations: cited };
    const [, answer, , failed] = fromConversation({ ...conversation, turns: [turn, conversation.turns[1]!] });
    const [live] = fold([{ graft: { event: "citations", stage: "cited", citations: cited } }]);
    expect(answer?.citations).toEqual(live.citations);
    expect(answer?.citations.map((c) => c.n)).toEqual([1, 2]);
    expect(failed?.citations).toEqual([]);
    // Stored before turns kept citations, or none cited: no footnotes.
    expect(fromConversation(conversation)[1]?.citations).toEqual([]);
  });

  it("show a turn the user stopped as stopped, not failed", () => {
    const stopped: Conversation = {
      ...conversation,
      messages: [{ role: "user", content: "long story", turn_id: "t9", created_at: "" }],
      turns: [
        { id: "t9", status: "failed", model: "m", finish_reason: null, error: "the client went away before the turn finished", duration_ms: 1, tool_runs: [] },
      ],
    };
    const [, answer] = fromConversation(stopped);
    expect(answer?.stopped).toBe(true);
    expect(answer?.error).toBeUndefined();
  });

  it("give the history of a branch, text only", () => {
    const messages = fromConversation(conversation);
    expect(historyBefore(messages, 2)).toEqual([
      { role: "user", content: "hi" },
      { role: "assistant", content: "It is noon." },
    ]);
    expect(historyBefore([userMessage("a"), assistantMessage()], 2)).toEqual([{ role: "user", content: "a" }]);
  });
});
