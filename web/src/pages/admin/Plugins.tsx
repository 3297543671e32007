/** Installed plugins, MCP servers and services (GET /v1/admin/plugins). */
import type { JSX } from "preact";
import { api } from "../../api/client";
import type { PluginsReport } from "../../api/types";
import { Empty, ErrorBanner, Skeleton, Table, useLoad } from "../../components/Common";
import { t } from "../../i18n";

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(String).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function PluginsTab(): JSX.Element {
  const report = useLoad(() => api<PluginsReport>("/v1/admin/plugins"), []);
  const data = report.data;
  const services = data?.services ?? [];
  const serviceColumns = [...new Set(services.flatMap((s) => Object.keys(s)))];
  return (
    <div class="stack">
      {report.error && <ErrorBanner error={report.error} onRetry={report.reload} />}
      {report.loading && !data && <Skeleton lines={5} />}
      {data && (
        <>
          <section class="card">
            <h2 class="card-title">{t("plugins.plugins")}</h2>
            {data.plugins.length === 0 ? (
              <Empty title={t("plugins.none")} />
            ) : (
              <Table columns={[t("plugins.name"), t("plugins.package"), t("plugins.version"), t("plugins.hooks")]}>
                {data.plugins.map((p) => (
                  <tr key={p.name}>
                    <td>
                      <strong>{p.name}</strong>
                    </td>
                    <td class="muted">{p.package}</td>
                    <td>
                      <code>{p.version}</code>
                    </td>
                    <td class="muted">{(p.hooks ?? []).join(", ")}</td>
                  </tr>
                ))}
              </Table>
            )}
          </section>
          <section class="card">
            <h2 class="card-title">{t("plugins.mcp")}</h2>
            {data.mcp_servers.length === 0 ? (
              <Empty title={t("plugins.noMcp")} />
            ) : (
              <Table columns={[t("plugins.name"), t("plugins.transport"), t("plugins.tools")]}>
                {data.mcp_servers.map((m) => (
                  <tr key={m.name}>
                    <td>
                      <strong>{m.name}</strong>
                    </td>
                    <td>{m.transport}</td>
                    <td class="muted">{cell(m.tools)}</td>
                  </tr>
                ))}
              </Table>
            )}
          </section>
          {services.length > 0 && (
            <section class="card">
              <h2 class="card-title">{t("plugins.services")}</h2>
              <Table columns={serviceColumns}>
                {services.map((s, i) => (
                  <tr key={i}>
                    {serviceColumns.map((c) => (
                      <td key={c}>{cell(s[c])}</td>
                    ))}
                  </tr>
                ))}
              </Table>
            </section>
          )}
        </>
      )}
    </div>
  );
}
