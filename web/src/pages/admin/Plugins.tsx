/** Installed plugins, MCP servers and services (GET /v1/admin/plugins). */
import type { JSX } from "preact";
import { api } from "../../api/client";
import type { PluginsReport } from "../../api/types";
import { Empty, ErrorBanner, Skeleton, useLoad } from "../../components/Common";
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
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr>
                      <th scope="col">{t("plugins.name")}</th>
                      <th scope="col">{t("plugins.package")}</th>
                      <th scope="col">{t("plugins.version")}</th>
                      <th scope="col">{t("plugins.hooks")}</th>
                    </tr>
                  </thead>
                  <tbody>
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
                  </tbody>
                </table>
              </div>
            )}
          </section>
          <section class="card">
            <h2 class="card-title">{t("plugins.mcp")}</h2>
            {data.mcp_servers.length === 0 ? (
              <Empty title={t("plugins.noMcp")} />
            ) : (
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr>
                      <th scope="col">{t("plugins.name")}</th>
                      <th scope="col">{t("plugins.transport")}</th>
                      <th scope="col">{t("plugins.tools")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.mcp_servers.map((m) => (
                      <tr key={m.name}>
                        <td>
                          <strong>{m.name}</strong>
                        </td>
                        <td>{m.transport}</td>
                        <td class="muted">{cell(m.tools)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
          {services.length > 0 && (
            <section class="card">
              <h2 class="card-title">{t("plugins.services")}</h2>
              <div class="table-wrap">
                <table class="table">
                  <thead>
                    <tr>
                      {serviceColumns.map((c) => (
                        <th key={c} scope="col">
                          {c}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {services.map((s, i) => (
                      <tr key={i}>
                        {serviceColumns.map((c) => (
                          <td key={c}>{cell(s[c])}</td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>
          )}
        </>
      )}
    </div>
  );
}
