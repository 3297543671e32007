/** A knowledge document's passages, with the one a citation points at highlighted. */
import type { JSX } from "preact";
import { useEffect } from "preact/hooks";
import { api } from "../api/client";
import type { DocumentFull } from "../api/types";
import { ErrorBanner, Skeleton, useLoad } from "../components/Common";
import { t } from "../i18n";
import { formatDateTime } from "../lib/format";
import { isExternal } from "../lib/links";

export function DocumentPage({ id, chunk }: { id: string; chunk: string | null }): JSX.Element {
  const { data: doc, error, loading, reload } = useLoad(
    () => api<DocumentFull>(`/v1/knowledge/documents/${encodeURIComponent(id)}`),
    [id],
  );
  useEffect(() => {
    if (!doc || !chunk) return;
    const el = document.getElementById(`chunk-${chunk}`);
    el?.scrollIntoView({ block: "center" });
    el?.focus({ preventScroll: true });
  }, [doc, chunk]);
  const external = doc ? isExternal(doc.source) : false;
  return (
    <div class="page doc-page">
      <a class="back" href="#" onClick={(e) => {
        e.preventDefault();
        history.back();
      }}>
        ← {t("common.back")}
      </a>
      {error && <ErrorBanner error={error} onRetry={reload} />}
      {loading && <Skeleton lines={6} />}
      {doc && (
        <article>
          <header class="page-head">
            <h1>{doc.title}</h1>
            <p class="muted">
              {doc.collection} ·{" "}
              {external ? (
                <a href={doc.source} target="_blank" rel="noopener noreferrer">
                  {doc.source}
                </a>
              ) : (
                doc.source
              )}
              {doc.ingested_at && ` · ${formatDateTime(doc.ingested_at)}`}
            </p>
          </header>
          {doc.chunks.map((c) => {
            const highlighted = String(c.id) === chunk;
            return (
              <section
                key={c.id}
                id={`chunk-${c.id}`}
                class={`passage${highlighted ? " highlighted" : ""}`}
                data-highlighted={highlighted ? "true" : undefined}
                tabIndex={highlighted ? -1 : undefined}
              >
                {(c.heading || c.page) && (
                  <div class="passage-head">
                    {c.heading}
                    {c.page ? ` · ${t("cite.page", { page: c.page })}` : ""}
                  </div>
                )}
                <p class="passage-text">{c.text}</p>
              </section>
            );
          })}
        </article>
      )}
    </div>
  );
}
