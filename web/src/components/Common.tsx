/** Small shared pieces: empty and error states, skeletons, spinners, a confirm button, a table. */
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api/client";
import { t } from "../i18n";
import { Icon, type IconName } from "./Icon";

/** A user-facing message for an error thrown by an API call. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 0) return t("error.network");
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function Spinner({ label }: { label?: string }): JSX.Element {
  return <span class="spinner" role={label ? "status" : undefined} aria-label={label} />;
}

export function Skeleton({ lines = 3 }: { lines?: number }): JSX.Element {
  return (
    <div class="skeleton" aria-busy="true" aria-label={t("common.loading")}>
      {Array.from({ length: lines }, (_, i) => (
        <div key={i} class={`skeleton-line w${(i % 3) + 1}`} />
      ))}
    </div>
  );
}

export function Empty({
  icon,
  title,
  children,
}: {
  icon?: IconName;
  title: string;
  children?: ComponentChildren;
}): JSX.Element {
  return (
    <div class="empty">
      {icon && (
        <div class="empty-icon">
          <Icon name={icon} size={28} />
        </div>
      )}
      <p class="empty-title">{title}</p>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

export function ErrorBanner({
  error,
  onRetry,
}: {
  error: string;
  onRetry?: () => void;
}): JSX.Element {
  return (
    <div class="banner error" role="alert">
      <span>{error}</span>
      {onRetry && (
        <button type="button" class="btn small" onClick={onRetry}>
          {t("common.retry")}
        </button>
      )}
    </div>
  );
}

/** A button that asks once more ("Sure?") before it acts. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  class: cls = "btn small danger",
  testid,
}: {
  label: string;
  confirmLabel?: string;
  onConfirm: () => void;
  class?: string;
  testid?: string;
}): JSX.Element {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const timer = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(timer);
  }, [armed]);
  return (
    <button
      type="button"
      class={`${cls}${armed ? " armed" : ""}`}
      data-testid={testid}
      onClick={() => {
        if (armed) {
          setArmed(false);
          onConfirm();
        } else {
          setArmed(true);
        }
      }}
    >
      {armed ? (confirmLabel ?? t("common.sure")) : label}
    </button>
  );
}

/** A column of a `Table`: its heading, or its heading and `num` for a right-aligned number. */
export type Column = string | { label: string; num: boolean };

/**
 * A table that scrolls sideways on narrow screens: a header row of `columns` (and, when
 * `actions`, a last column headed for screen readers only), then `children` as its body rows.
 */
export function Table({
  columns,
  actions = false,
  class: cls,
  children,
}: {
  columns: Column[];
  actions?: boolean;
  class?: string;
  children: ComponentChildren;
}): JSX.Element {
  return (
    <div class="table-wrap">
      <table class={cls ? `table ${cls}` : "table"}>
        <thead>
          <tr>
            {columns.map((c, i) =>
              typeof c === "string" ? (
                <th key={i} scope="col">
                  {c}
                </th>
              ) : (
                <th key={i} scope="col" class={c.num ? "num" : undefined}>
                  {c.label}
                </th>
              ),
            )}
            {actions && (
              <th scope="col">
                <span class="sr-only">{t("common.actions")}</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** Run an async loader on mount and when `deps` change; give its state. */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
): { data: T | null; error: string | null; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(null);
    load().then(
      (value) => {
        if (!live) return;
        setData(value);
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(errorText(err));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { data, error, loading, reload: () => setTick((n) => n + 1) };
}

/** Copy text to the clipboard (falls back to a hidden textarea). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}
