/**
 * A server-sent-events parser for `fetch` + `ReadableStream` (EventSource cannot POST).
 *
 * Feed it decoded text as it arrives; it returns the `data` of every complete event.
 * Handles `\n`, `\r\n` and `\r` line ends, several `data:` lines per event (joined with
 * `\n`), comments (`: ...`) and other fields, which it ignores.
 */

export class SSEParser {
  private buffer = "";
  private data: string[] = [];
  private sawCR = false;

  /** Parse more text; returns the data of the events it completed. */
  feed(text: string): string[] {
    const out: string[] = [];
    let chunk = text;
    // A "\r\n" split across two chunks: the "\n" belongs to the line already ended.
    if (this.sawCR && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.sawCR = false;
    this.buffer += chunk;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (c !== "\n" && c !== "\r") continue;
      const line = this.buffer.slice(start, i);
      if (c === "\r") {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === "\n") i++;
        } else {
          this.sawCR = true;
        }
      }
      start = i + 1;
      this.line(line, out);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** The end of the stream: an event not closed by a blank line still counts. */
  end(): string[] {
    const out: string[] = [];
    if (this.buffer) this.line(this.buffer, out);
    this.buffer = "";
    this.line("", out);
    return out;
  }

  private line(line: string, out: string[]): void {
    if (line === "") {
      if (this.data.length) out.push(this.data.join("\n"));
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
  }
}

/** Read an SSE response body, calling `onData` for each event's data, in order. */
export async function readSSE(
  body: ReadableStream<Uint8Array>,
  onData: (data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const data of parser.feed(decoder.decode(value, { stream: true }))) onData(data);
    }
    for (const data of parser.feed(decoder.decode())) onData(data);
    for (const data of parser.end()) onData(data);
  } finally {
    reader.releaseLock();
  }
}
