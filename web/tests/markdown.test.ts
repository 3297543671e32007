import { describe, expect, it } from "vitest";
import { renderMarkdown } from "../src/lib/markdown";
import { citationHref, isExternal } from "../src/lib/links";
import type { Citation } from "../src/api/types";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("markdown sanitising", () => {
  it("removes script tags", () => {
    const html = renderMarkdown("hi <script>alert(1)</script> there");
    expect(html).not.toContain("<script");
    expect(html).not.toContain("alert(1)");
  });

  it("removes event handlers", () => {
    const html = renderMarkdown('<img src="x" onerror="alert(1)"> <a href="/" onclick="evil()">x</a>');
    expect(html).not.toMatch(/onerror|onclick/i);
    expect(html).not.toContain("alert(1)");
  });

  it("removes javascript: links, in markdown and in HTML", () => {
    const html = renderMarkdown('[click](javascript:alert(1)) <a href="JaVaScRiPt:alert(2)">y</a>');
    expect(html.toLowerCase()).not.toContain("javascript:");
    const links = dom(html).querySelectorAll("a");
    for (const a of Array.from(links)) expect(a.getAttribute("href") ?? "").not.toMatch(/script/i);
  });

  it("removes iframes, forms, styles and style attributes", () => {
    const html = renderMarkdown(
      '<iframe src="https://evil"></iframe><form action="/x"><input></form><style>body{}</style><p style="color:red">p</p>',
    );
    expect(html).not.toMatch(/<iframe|<form|<input|<style|style=/i);
  });

  it("opens external links in a new tab, safely; internal links stay", () => {
    const root = dom(renderMarkdown("[out](https://example.org/page) and [in](#/knowledge)"));
    const [out, inner] = Array.from(root.querySelectorAll("a"));
    expect(out?.getAttribute("target")).toBe("_blank");
    expect(out?.getAttribute("rel")).toBe("noopener noreferrer");
    expect(inner?.hasAttribute("target")).toBe(false);
    expect(inner?.hasAttribute("rel")).toBe(false);
  });

  it("drops a target=_blank the model wrote on an internal link", () => {
    const root = dom(renderMarkdown('<a href="/v1/x" target="_blank">x</a>'));
    expect(root.querySelector("a")?.hasAttribute("target")).toBe(false);
  });
});

describe("markdown rendering", () => {
  it("highlights code and adds a copy button", () => {
    const root = dom(renderMarkdown("```python\ndef f():\n    return 1\n```", { copyLabel: "Copy" }));
    const block = root.querySelector(".code-block");
    expect(block).not.toBeNull();
    expect(block?.querySelector("button[data-copy]")?.textContent).toBe("Copy");
    expect(block?.querySelector("code.language-python span.hljs-keyword")?.textContent).toBe("def");
    expect(block?.querySelector(".code-head span")?.textContent).toBe("python");
  });

  it("escapes code in unknown languages", () => {
    const html = renderMarkdown("```brainfart\n<b>x</b>\n```");
    expect(html).toContain("&lt;b&gt;x&lt;/b&gt;");
  });

  it("turns [n] markers into citation links, not inside code", () => {
    const citations: Citation[] = [
      { n: 1, document_id: "d1", chunk_id: "c9", link: "/v1/knowledge/documents/d1#chunk-c9", title: "Handbook" },
      { n: 2, document_id: "d2", chunk_id: "c2", link: "https://example.org/a", title: "Web" },
    ];
    const root = dom(renderMarkdown("Leave is 25 days [1][2]. See `[1]` and [3].", { citations }));
    const links = Array.from(root.querySelectorAll("a[data-testid='citation']"));
    expect(links.map((a) => a.textContent)).toEqual(["1", "2"]);
    expect(links[0]?.getAttribute("href")).toBe("#/knowledge/doc/d1?chunk=c9");
    expect(links[0]?.hasAttribute("target")).toBe(false);
    expect(links[1]?.getAttribute("href")).toBe("https://example.org/a");
    expect(links[1]?.getAttribute("rel")).toBe("noopener noreferrer");
    expect(root.querySelector("code")?.textContent).toBe("[1]");
    expect(root.textContent).toContain("[3]");
  });
});

describe("links", () => {
  it("knows external from internal", () => {
    expect(isExternal("https://example.org")).toBe(true);
    expect(isExternal(`${location.origin}/x`)).toBe(false);
    expect(isExternal("/v1/x")).toBe(false);
    expect(isExternal("#/chat")).toBe(false);
  });

  it("sends document citations into the app", () => {
    const c: Citation = { n: 1, document_id: "d 1", chunk_id: "k", link: "" };
    expect(citationHref(c)).toBe("#/knowledge/doc/d%201?chunk=k");
  });
});
