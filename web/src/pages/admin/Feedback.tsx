/** Users' thumbs up and down on answers, with comments (GET /v1/admin/feedback). */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api, query } from "../../api/client";
import type { FeedbackRecord, ListOf } from "../../api/types";
import { Empty, ErrorBanner, Skeleton, Table, useLoad } from "../../components/Common";
import { Icon } from "../../components/Icon";
import { t } from "../../i18n";
import { formatDateTime } from "../../lib/format";

export function FeedbackTab(): JSX.Element {
  const [rating, setRating] = useState("");
  const list = useLoad(() => api<ListOf<FeedbackRecord>>(`/v1/admin/feedback${query({ rating, limit: 100 })}`), [rating]);
  const rows = list.data?.data ?? [];
  return (
    <section class="card">
      <div class="row between wrap">
        <h2 class="card-title">{t("admin.feedback")}</h2>
        <label class="field inline">
          <span>{t("feedback.rating")}</span>
          <select value={rating} onChange={(e) => setRating(e.currentTarget.value)}>
            <option value="">{t("feedback.all")}</option>
            <option value="up">{t("feedback.up")}</option>
            <option value="down">{t("feedback.down")}</option>
          </select>
        </label>
      </div>
      {list.error && <ErrorBanner error={list.error} onRetry={list.reload} />}
      {list.loading && !list.data && <Skeleton lines={5} />}
      {list.data && rows.length === 0 && <Empty icon="comment" title={t("feedback.none")} />}
      {rows.length > 0 && (
        <Table
          columns={[t("feedback.rating"), t("feedback.user"), t("feedback.comment"), t("feedback.conversation"), t("audit.at")]}
        >
          {rows.map((f) => (
            <tr key={f.id}>
              <td>
                <span class={`rating ${f.rating}`} role="img" aria-label={f.rating === "up" ? t("feedback.up") : t("feedback.down")}>
                  <Icon name={f.rating === "up" ? "up" : "down"} size={16} />
                </span>
              </td>
              <td>{f.user ?? ""}</td>
              <td class="wrap-text">{f.comment || <span class="muted">—</span>}</td>
              <td>
                <code class="small">{f.conversation_id}</code>
              </td>
              <td class="nowrap muted">{formatDateTime(f.created_at)}</td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}
