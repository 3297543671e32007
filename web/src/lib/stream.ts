/** One streamed chat completion over fetch: POST, then read the SSE body chunk by chunk. */
import { errorFrom, requestHeaders, unauthorized } from "../api/client";
import type { ChatChunk } from "../api/types";
import { readSSE } from "./sse";

export interface ChatRequest {
  model: string;
  messages: Array<{ role: string; content: string }>;
  conversation_id?: string;
}

/**
 * Stream a chat turn; `onChunk` gets each parsed chunk. Resolves at `[DONE]` or the end
 * of the body; rejects with `ApiError` (HTTP error) or an `AbortError` (stopped).
 */
export async function streamChat(
  request: ChatRequest,
  signal: AbortSignal,
  onChunk: (chunk: ChatChunk) => void,
  onConversation?: (id: string) => void,
): Promise<void> {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: requestHeaders("POST", { Accept: "text/event-stream" }, true),
    body: JSON.stringify({ ...request, stream: true }),
    signal,
  });
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) unauthorized();
    throw error;
  }
  const conversation = response.headers.get("x-graft-conversation-id");
  if (conversation && onConversation) onConversation(conversation);
  if (!response.body) return;
  let done = false;
  await readSSE(response.body, (data) => {
    if (done) return;
    if (data === "[DONE]") {
      done = true;
      return;
    }
    let chunk: ChatChunk;
    try {
      chunk = JSON.parse(data) as ChatChunk;
    } catch {
      return;
    }
    onChunk(chunk);
  });
}
