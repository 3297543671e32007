/**
 * How users' messages felt over time (GET /v1/sentiment), per assistant: chart and table.
 * The period counts back from now, or from the end of the "until" day (the server counts the
 * tags dated before `until`).
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api, query } from "../../api/client";
import type { SentimentPoint } from "../../api/types";
import { Empty, ErrorBanner, Skeleton, Table, useLoad } from "../../components/Common";
import { LineChart, type Series } from "../../components/LineChart";
import { getLang, t } from "../../i18n";

const RANGES = { "1": 1, "7": 7, "30": 30, "90": 90, all: 0 } as const;
type Range = keyof typeof RANGES;

function stamp(moment: Date): string {
  return `${moment.toISOString().slice(0, 19)}Z`;
}

/** The end of the `YYYY-MM-DD` day in the user's zone (the next midnight), or undefined. */
function untilFor(day: string): Date | undefined {
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return undefined;
  return new Date(y, m - 1, d + 1);
}

function sinceFor(range: Range, end: Date | undefined): string | undefined {
  const days = RANGES[range];
  if (!days) return undefined;
  return stamp(new Date((end?.getTime() ?? Date.now()) - days * 86400_000));
}

export function SentimentTab(): JSX.Element {
  const [bucket, setBucket] = useState<"hour" | "day" | "week">("day");
  const [range, setRange] = useState<Range>("30");
  const [until, setUntil] = useState("");
  const [assistant, setAssistant] = useState("");
  const [user, setUser] = useState("");
  const [userQuery, setUserQuery] = useState("");
  const report = useLoad(() => {
    const end = untilFor(until);
    const params = { bucket, since: sinceFor(range, end), until: end && stamp(end), assistant, user: userQuery };
    return api<{ bucket: string; data: SentimentPoint[] }>(`/v1/sentiment${query(params)}`);
  }, [bucket, range, until, assistant, userQuery]);
  const points = report.data?.data ?? [];
  const assistants = [...new Set(points.map((p) => p.assistant))].sort();
  const series: Series[] = assistants.map((name) => ({
    name,
    points: points
      .filter((p) => p.assistant === name)
      .map((p) => ({
        t: new Date(p.start).getTime(),
        v: p.mean,
        label: `+${p.positive} ·${p.neutral} −${p.negative}`,
      })),
  }));
  const totals = points.reduce(
    (acc, p) => ({ positive: acc.positive + p.positive, neutral: acc.neutral + p.neutral, negative: acc.negative + p.negative }),
    { positive: 0, neutral: 0, negative: 0 },
  );
  const all = totals.positive + totals.neutral + totals.negative;
  const pct = (n: number): string => (all ? `${Math.round((n / all) * 100)}%` : "—");
  const formatX = (ms: number): string =>
    new Date(ms).toLocaleString(getLang(), bucket === "hour" ? { month: "short", day: "numeric", hour: "2-digit" } : { month: "short", day: "numeric" });

  return (
    <div class="stack">
      <section class="card">
        <form
          class="row wrap filters"
          onSubmit={(e) => {
            e.preventDefault();
            setUserQuery(user.trim());
          }}
        >
          <label class="field inline">
            <span>{t("sent.range")}</span>
            <select value={range} onChange={(e) => setRange(e.currentTarget.value as Range)}>
              <option value="1">{t("sent.last24h")}</option>
              <option value="7">{t("sent.last7d")}</option>
              <option value="30">{t("sent.last30d")}</option>
              <option value="90">{t("sent.last90d")}</option>
              <option value="all">{t("sent.all")}</option>
            </select>
          </label>
          <label class="field inline">
            <span>{t("sent.until")}</span>
            <input type="date" data-testid="sentiment-until" value={until} onChange={(e) => setUntil(e.currentTarget.value)} />
          </label>
          <label class="field inline">
            <span>{t("sent.bucket")}</span>
            <select value={bucket} onChange={(e) => setBucket(e.currentTarget.value as typeof bucket)}>
              <option value="hour">{t("sent.hour")}</option>
              <option value="day">{t("sent.day")}</option>
              <option value="week">{t("sent.week")}</option>
            </select>
          </label>
          <label class="field inline">
            <span>{t("sent.assistant")}</span>
            <input value={assistant} placeholder={t("sent.any")} onChange={(e) => setAssistant(e.currentTarget.value.trim())} />
          </label>
          <label class="field inline">
            <span>{t("sent.user")}</span>
            <input value={user} placeholder={t("sent.any")} onInput={(e) => setUser(e.currentTarget.value)} />
          </label>
          <button type="submit" class="btn small">
            {t("sent.apply")}
          </button>
        </form>
      </section>
      <div class="stats">
        <div class="stat positive">
          <span class="stat-value">{pct(totals.positive)}</span>
          <span class="stat-label">{t("sentiment.positive")} · {totals.positive}</span>
        </div>
        <div class="stat neutral">
          <span class="stat-value">{pct(totals.neutral)}</span>
          <span class="stat-label">{t("sentiment.neutral")} · {totals.neutral}</span>
        </div>
        <div class="stat negative">
          <span class="stat-value">{pct(totals.negative)}</span>
          <span class="stat-label">{t("sentiment.negative")} · {totals.negative}</span>
        </div>
      </div>
      <section class="card">
        <h2 class="card-title">{t("sent.chartTitle")}</h2>
        {report.error && <ErrorBanner error={report.error} onRetry={report.reload} />}
        {report.loading && !report.data && <Skeleton lines={6} />}
        {report.data && points.length === 0 && <Empty icon="chat" title={t("sent.none")} />}
        {points.length > 0 && (
          <LineChart
            series={series}
            yMin={-1}
            yMax={1}
            formatX={formatX}
            formatY={(v) => (v > 0 ? `+${v.toFixed(1)}` : v.toFixed(1))}
            title={t("sent.chartTitle")}
          />
        )}
        {points.length > 0 && (
          <details class="data-table">
            <summary>{t("sent.table")}</summary>
            <Table
              columns={[
                t("sent.start"),
                t("sent.assistant"),
                { label: t("sentiment.positive"), num: true },
                { label: t("sentiment.neutral"), num: true },
                { label: t("sentiment.negative"), num: true },
                { label: t("sent.mean"), num: true },
              ]}
            >
              {points.map((p) => (
                <tr key={`${p.start}-${p.assistant}`}>
                  <td>{formatX(new Date(p.start).getTime())}</td>
                  <td>{p.assistant}</td>
                  <td class="num">{p.positive}</td>
                  <td class="num">{p.neutral}</td>
                  <td class="num">{p.negative}</td>
                  <td class="num">{p.mean.toFixed(2)}</td>
                </tr>
              ))}
            </Table>
          </details>
        )}
      </section>
    </div>
  );
}
