/**
 * Model text to safe HTML: `marked` renders markdown, `highlight.js` colours code blocks,
 * `DOMPurify` removes anything active (scripts, event handlers, `javascript:` links, forms,
 * frames, inline styles, which the CSP forbids anyway). After sanitising, a DOM pass adds
 * what we trust: copy buttons on code blocks and footnote links for `[n]` citation markers.
 */
import { Marked } from "marked";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import yaml from "highlight.js/lib/languages/yaml";
import type { Citation } from "../api/types";
import { citationHref, isExternal } from "./links";

const LANGUAGES = { bash, c, cpp, go, java, javascript, json, python, rust, sql, typescript, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.registerAliases(["sh", "shell", "zsh", "console"], { languageName: "bash" });
hljs.registerAliases(["js", "jsx", "mjs"], { languageName: "javascript" });
hljs.registerAliases(["ts", "tsx"], { languageName: "typescript" });
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["yml"], { languageName: "yaml" });
hljs.registerAliases(["rs"], { languageName: "rust" });
hljs.registerAliases(["golang"], { languageName: "go" });
hljs.registerAliases(["h", "c++", "hpp", "cc"], { languageName: "cpp" });

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const marked = new Marked({ gfm: true, breaks: false, async: false });
marked.use({
  renderer: {
    code({ text, lang }) {
      const name = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
      let body: string;
      let shown = name;
      if (name && hljs.getLanguage(name)) {
        body = hljs.highlight(text, { language: name, ignoreIllegals: true }).value;
      } else {
        body = escapeHtml(text);
        if (!name) shown = "";
      }
      const cls = shown ? ` class="hljs language-${escapeHtml(shown)}"` : ` class="hljs"`;
      return `<pre><code${cls}>${body}</code></pre>\n`;
    },
  },
});

const FORBID_TAGS = [
  "style",
  "form",
  "input",
  "button",
  "textarea",
  "select",
  "option",
  "iframe",
  "frame",
  "object",
  "embed",
  "link",
  "meta",
  "base",
  "svg",
  "math",
  "audio",
  "video",
];
const FORBID_ATTR = ["style", "srcset", "action", "formaction", "id", "name"];

let hooked = false;
function hookLinks(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName !== "A") return;
    const element = node as Element;
    const href = element.getAttribute("href");
    if (href && isExternal(href)) {
      element.setAttribute("target", "_blank");
      element.setAttribute("rel", "noopener noreferrer");
    } else {
      element.removeAttribute("target");
    }
  });
}

/** Sanitised HTML from untrusted HTML (exported for tests and for other rich text). */
export function sanitize(html: string): DocumentFragment {
  hookLinks();
  return DOMPurify.sanitize(html, {
    FORBID_TAGS,
    FORBID_ATTR,
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
}

export interface RenderOptions {
  /** The citations whose `[n]` markers become footnote links. */
  citations?: readonly Citation[];
  /** The copy button's label (the UI's language). */
  copyLabel?: string;
}

const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

function linkCitations(root: DocumentFragment, citations: readonly Citation[]): void {
  if (!citations.length) return;
  const byNumber = new Map(citations.map((c) => [c.n, c]));
  const doc = root.ownerDocument;
  const walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement?.closest("code, pre, a")) continue;
    if (MARKER.test(node.nodeValue ?? "")) texts.push(node as Text);
    MARKER.lastIndex = 0;
  }
  for (const text of texts) {
    const value = text.nodeValue ?? "";
    const out = doc.createDocumentFragment();
    let last = 0;
    for (const match of value.matchAll(MARKER)) {
      const numbers = (match[1] ?? "").split(",").map((s) => Number(s.trim()));
      if (!numbers.every((n) => byNumber.has(n))) continue;
      out.append(value.slice(last, match.index));
      for (const n of numbers) {
        const citation = byNumber.get(n);
        if (!citation) continue;
        const sup = doc.createElement("sup");
        sup.className = "cite";
        const a = doc.createElement("a");
        const href = citationHref(citation);
        a.setAttribute("href", href);
        a.setAttribute("data-testid", "citation");
        a.setAttribute("data-n", String(n));
        a.setAttribute("data-link", citation.link);
        a.setAttribute("aria-label", `[${n}] ${citation.title ?? citation.source ?? ""}`.trim());
        if (isExternal(href)) {
          a.setAttribute("target", "_blank");
          a.setAttribute("rel", "noopener noreferrer");
        }
        a.textContent = String(n);
        sup.append(a);
        out.append(sup);
      }
      last = (match.index ?? 0) + match[0].length;
    }
    out.append(value.slice(last));
    text.replaceWith(out);
  }
}

function addCopyButtons(root: DocumentFragment, label: string): void {
  const doc = root.ownerDocument;
  for (const pre of Array.from(root.querySelectorAll("pre"))) {
    const code = pre.querySelector("code");
    const lang = /language-([\w+#-]+)/.exec(code?.className ?? "")?.[1] ?? "";
    const wrap = doc.createElement("div");
    wrap.className = "code-block";
    const head = doc.createElement("div");
    head.className = "code-head";
    const name = doc.createElement("span");
    name.textContent = lang;
    const button = doc.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.setAttribute("data-copy", "");
    button.textContent = label;
    head.append(name, button);
    pre.replaceWith(wrap);
    wrap.append(head, pre);
  }
}

/** Markdown to sanitised HTML, with highlighted code, copy buttons and citation links. */
export function renderMarkdown(text: string, options: RenderOptions = {}): string {
  const html = marked.parse(text) as string;
  const fragment = sanitize(html);
  addCopyButtons(fragment, options.copyLabel ?? "Copy");
  linkCitations(fragment, options.citations ?? []);
  const holder = fragment.ownerDocument.createElement("div");
  holder.append(fragment);
  return holder.innerHTML;
}
