/** A small hand-drawn SVG line chart: time on x, one line per series, a legend. */
import type { JSX } from "preact";
import { linePath, linearScale, niceTicks } from "../lib/chart";

export interface Series {
  name: string;
  points: Array<{ t: number; v: number; label?: string }>;
}

const W = 720;
const H = 260;
const M = { top: 16, right: 16, bottom: 30, left: 44 };

export function LineChart({
  series,
  yMin,
  yMax,
  formatX,
  formatY,
  title,
}: {
  series: Series[];
  yMin: number;
  yMax: number;
  formatX: (t: number) => string;
  formatY: (v: number) => string;
  title: string;
}): JSX.Element {
  const times = series.flatMap((s) => s.points.map((p) => p.t));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const pad = t0 === t1 ? 12 * 3600 * 1000 : 0;
  const x = linearScale(t0 - pad, t1 + pad, M.left, W - M.right);
  const y = linearScale(yMin, yMax, H - M.bottom, M.top);
  const yTicks = niceTicks(yMin, yMax, 4);
  const uniqueTimes = [...new Set(times)].sort((a, b) => a - b);
  const step = Math.max(1, Math.ceil(uniqueTimes.length / 6));
  const xTicks = uniqueTimes.filter((_, i) => i % step === 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} preserveAspectRatio="xMidYMid meet">
        <title>{title}</title>
        {yTicks.map((v) => (
          <g key={`y${v}`} class="tick">
            <line x1={M.left} x2={W - M.right} y1={y(v)} y2={y(v)} class={v === 0 ? "zero" : "grid"} />
            <text x={M.left - 8} y={y(v)} dy="0.32em" text-anchor="end">
              {formatY(v)}
            </text>
          </g>
        ))}
        {xTicks.map((tick) => (
          <text key={`x${tick}`} class="tick" x={x(tick)} y={H - 8} text-anchor="middle">
            {formatX(tick)}
          </text>
        ))}
        {series.map((s, i) => {
          const points = [...s.points].sort((a, b) => a.t - b.t).map((p) => ({ ...p, x: x(p.t), y: y(p.v) }));
          return (
            <g key={s.name} class={`series series-${i % 6}`}>
              <path d={linePath(points)} class="line" />
              {points.map((p) => (
                <circle key={p.t} cx={p.x} cy={p.y} r={3.5} class="dot">
                  <title>{`${s.name} · ${formatX(p.t)} · ${formatY(p.v)}${p.label ? ` · ${p.label}` : ""}`}</title>
                </circle>
              ))}
            </g>
          );
        })}
      </svg>
      {series.length > 0 && (
        <figcaption class="legend">
          {series.map((s, i) => (
            <span key={s.name} class={`legend-item series-${i % 6}`}>
              <span class="swatch" aria-hidden="true" />
              {s.name}
            </span>
          ))}
        </figcaption>
      )}
    </figure>
  );
}
