/**
 * The audit log, a page at a time. The API pages forward only (`after` = the last seq
 * seen), so "previous" walks back through the `after` values already visited.
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api, query } from "../../api/client";
import type { AuditRecord } from "../../api/types";
import { Empty, ErrorBanner, Skeleton, Table, useLoad } from "../../components/Common";
import { t } from "../../i18n";
import { formatDateTime, prettyJson } from "../../lib/format";

const LIMIT = 50;

interface Page {
  data: AuditRecord[];
  last_seq: number | null;
}

export function AuditTab(): JSX.Element {
  // null: the newest page; a number: the page after that seq.
  const [after, setAfter] = useState<number | null>(null);
  const [trail, setTrail] = useState<Array<number | null>>([]);
  const [filter, setFilter] = useState("");
  const page = useLoad(() => api<Page>(`/v1/admin/audit${query({ after, limit: LIMIT })}`), [after]);
  const records = page.data?.data ?? [];
  const needle = filter.trim().toLowerCase();
  const shown = needle
    ? records.filter((r) => `${r.actor} ${r.action} ${r.target} ${r.outcome}`.toLowerCase().includes(needle))
    : records;
  const go = (next: number | null): void => {
    setTrail([...trail, after]);
    setAfter(next);
  };
  const back = (): void => {
    const previous = trail[trail.length - 1] ?? null;
    setTrail(trail.slice(0, -1));
    setAfter(previous);
  };
  const lastSeq = page.data?.last_seq ?? null;
  return (
    <section class="card">
      <div class="row between wrap">
        <h2 class="card-title">{t("admin.audit")}</h2>
        <input
          type="search"
          aria-label={t("audit.filter")}
          placeholder={t("audit.filter")}
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
      </div>
      <div class="row pager">
        <button type="button" class="btn small" onClick={() => go(0)} disabled={after === 0}>
          {t("audit.first")}
        </button>
        <button type="button" class="btn small" onClick={back} disabled={trail.length === 0}>
          ← {t("audit.previous")}
        </button>
        <button
          type="button"
          class="btn small"
          onClick={() => go(lastSeq)}
          disabled={lastSeq === null || records.length < LIMIT}
        >
          {t("audit.next")} →
        </button>
        <button
          type="button"
          class="btn small"
          onClick={() => {
            setTrail([]);
            setAfter(null);
            page.reload();
          }}
        >
          {t("audit.latest")}
        </button>
        <span class="muted small">{after === null ? t("audit.newest", { n: LIMIT }) : t("audit.after", { seq: after })}</span>
      </div>
      {page.error && <ErrorBanner error={page.error} onRetry={page.reload} />}
      {page.loading && !page.data && <Skeleton lines={6} />}
      {page.data && shown.length === 0 && <Empty title={t("audit.none")} />}
      {shown.length > 0 && (
        <Table
          class="audit"
          columns={[
            { label: "#", num: true },
            t("audit.at"),
            t("audit.actor"),
            t("audit.action"),
            t("audit.target"),
            t("audit.outcome"),
            t("audit.details"),
          ]}
        >
          {shown.map((r) => (
            <tr key={r.seq} data-testid="audit-row">
              <td class="num muted">{r.seq}</td>
              <td class="nowrap">{formatDateTime(r.at)}</td>
              <td>{r.actor}</td>
              <td>
                <code>{r.action}</code>
              </td>
              <td class="ellipsis" title={r.target}>
                {r.target}
              </td>
              <td>
                <span class={`badge ${r.outcome === "ok" ? "done" : "error"}`}>{r.outcome}</span>
              </td>
              <td>
                {r.details && Object.keys(r.details as object).length > 0 ? (
                  <details>
                    <summary>{t("audit.show")}</summary>
                    <pre class="tool-pre">{prettyJson(r.details)}</pre>
                  </details>
                ) : null}
              </td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}
