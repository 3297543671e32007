/** Where links go: external pages open in a new tab; graft's own documents open in the app. */
import type { Citation } from "../api/types";

function origin(): string {
  return typeof location !== "undefined" ? location.origin : "http://localhost";
}

/** Whether `href` leaves this site (an absolute http(s) URL to another origin). */
export function isExternal(href: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(href) && !href.startsWith("//")) return false;
  try {
    const url = new URL(href, origin());
    if (url.protocol === "mailto:") return true;
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin !== origin();
  } catch {
    return false;
  }
}

const DOCUMENT_LINK = /^\/v1\/knowledge\/documents\/([^/#?]+)(?:#chunk-(.+))?$/;

/** The app route of a knowledge document, scrolled to one passage. */
export function documentRoute(documentId: string, chunkId?: string | number | null): string {
  const base = `#/knowledge/doc/${encodeURIComponent(documentId)}`;
  return chunkId !== undefined && chunkId !== null && chunkId !== "" ? `${base}?chunk=${encodeURIComponent(String(chunkId))}` : base;
}

/** Where a citation's footnote goes: the source page for a URL, else the app's document view. */
export function citationHref(citation: Citation): string {
  const link = citation.link ?? "";
  if (/^https?:\/\//i.test(link)) return link;
  const found = DOCUMENT_LINK.exec(link);
  if (found?.[1]) {
    return documentRoute(decodeURIComponent(found[1]), found[2] ? decodeURIComponent(found[2]) : null);
  }
  return documentRoute(citation.document_id, citation.chunk_id);
}
