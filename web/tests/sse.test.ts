import { describe, expect, it } from "vitest";
import { SSEParser, readSSE } from "../src/lib/sse";

describe("SSEParser", () => {
  it("yields the data of complete events", () => {
    const p = new SSEParser();
    expect(p.feed('data: {"a":1}\n\ndata: [DONE]\n\n')).toEqual(['{"a":1}', "[DONE]"]);
  });

  it("keeps a partial event until it ends, across chunks", () => {
    const p = new SSEParser();
    expect(p.feed("da")).toEqual([]);
    expect(p.feed('ta: {"x"')).toEqual([]);
    expect(p.feed(":2}\n")).toEqual([]);
    expect(p.feed("\n")).toEqual(['{"x":2}']);
  });

  it("handles CRLF and CR line ends, also split between chunks", () => {
    const p = new SSEParser();
    expect(p.feed("data: one\r\n\r\ndata: two\r")).toEqual(["one"]);
    expect(p.feed("\n\r\n")).toEqual(["two"]);
    expect(p.feed("data: three\r\r")).toEqual(["three"]);
  });

  it("joins multi-line data, ignores comments and other fields", () => {
    const p = new SSEParser();
    expect(p.feed(": keep-alive\nevent: x\nid: 3\ndata: a\ndata:b\n\n")).toEqual(["a\nb"]);
  });

  it("takes the last event at the end of the stream without a blank line", () => {
    const p = new SSEParser();
    expect(p.feed("data: last")).toEqual([]);
    expect(p.end()).toEqual(["last"]);
  });

  it("keeps spaces after the first one and unicode intact", () => {
    const p = new SSEParser();
    expect(p.feed("data:   indented 你好\n\n")).toEqual(["  indented 你好"]);
  });
});

describe("readSSE", () => {
  it("reads a byte stream split inside a multi-byte character", async () => {
    const bytes = new TextEncoder().encode('data: {"t":"héllo 世界"}\n\ndata: [DONE]\n\n');
    const cut = bytes.indexOf(0xe4) + 1; // inside 世
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, cut));
        controller.enqueue(bytes.slice(cut));
        controller.close();
      },
    });
    const seen: string[] = [];
    await readSSE(body, (d) => seen.push(d));
    expect(seen).toEqual(['{"t":"héllo 世界"}', "[DONE]"]);
  });
});
