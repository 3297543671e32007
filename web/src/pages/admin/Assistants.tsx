/**
 * Assistants, edited like a custom GPT: prompt, model, tools (GET /v1/tools), collections,
 * data sources (GET /v1/sources), retrieval and who may use it. Configured assistants are
 * shown read-only (the settings file is where they change).
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api } from "../../api/client";
import type { AssistantDefinition, AssistantInfo, CollectionInfo, ListOf, SourceInfo, ToolInfo } from "../../api/types";
import { ConfirmButton, Empty, ErrorBanner, Skeleton, errorText, useLoad } from "../../components/Common";
import { Icon } from "../../components/Icon";
import { t } from "../../i18n";
import { splitList } from "../../lib/format";
import { toast } from "../../toast";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

async function optional<T>(path: string): Promise<T[]> {
  try {
    return (await api<ListOf<T>>(path)).data;
  } catch {
    return [];
  }
}

interface Form {
  name: string;
  description: string;
  model: string;
  system_prompt: string;
  allTools: boolean;
  tools: string[];
  collections: string[];
  retrieval: "tool" | "always";
  allSources: boolean;
  sources: string[];
  temperature: string;
  roles: string;
  users: string;
  groups: string;
}

function toForm(name: string, d: AssistantDefinition | null): Form {
  return {
    name,
    description: d?.description ?? "",
    model: d?.model ?? "",
    system_prompt: d?.system_prompt ?? "",
    allTools: d?.tools === null || d?.tools === undefined,
    tools: d?.tools ?? [],
    collections: d?.collections ?? [],
    retrieval: d?.retrieval ?? "tool",
    allSources: d?.sources === null || d?.sources === undefined,
    sources: d?.sources ?? [],
    temperature: d?.temperature === null || d?.temperature === undefined ? "" : String(d.temperature),
    roles: (d?.roles ?? []).join(", "),
    users: (d?.users ?? []).join(", "),
    groups: (d?.groups ?? []).join(", "),
  };
}

function toBody(form: Form, base: AssistantDefinition | null): Record<string, unknown> {
  const body: Record<string, unknown> = { ...(base ?? {}) };
  delete body.retention_days;
  for (const [key, value] of Object.entries(body)) if (value === null) delete body[key];
  Object.assign(body, {
    description: form.description,
    system_prompt: form.system_prompt,
    collections: form.collections,
    retrieval: form.retrieval,
    roles: splitList(form.roles),
    users: splitList(form.users),
    groups: splitList(form.groups),
  });
  if (form.model.trim()) body.model = form.model.trim();
  else delete body.model;
  if (form.allTools) delete body.tools;
  else body.tools = form.tools;
  if (form.allSources) delete body.sources;
  else body.sources = form.sources;
  if (form.temperature.trim() !== "") body.temperature = Number(form.temperature);
  else delete body.temperature;
  return body;
}

function Checklist({
  legend,
  items,
  chosen,
  onChange,
  empty,
}: {
  legend: string;
  items: Array<{ name: string; hint?: string }>;
  chosen: string[];
  onChange: (next: string[]) => void;
  empty: string;
}): JSX.Element {
  const names = new Set(items.map((i) => i.name));
  const all = [...items, ...chosen.filter((c) => !names.has(c)).map((name) => ({ name, hint: "" }))];
  return (
    <fieldset class="checklist">
      <legend class="sr-only">{legend}</legend>
      {all.length === 0 && <p class="muted small">{empty}</p>}
      {all.map((item) => (
        <label key={item.name} class="check" title={item.hint}>
          <input
            type="checkbox"
            checked={chosen.includes(item.name)}
            onChange={(e) => onChange(e.currentTarget.checked ? [...chosen, item.name] : chosen.filter((c) => c !== item.name))}
          />
          <span>
            <span class="check-name">{item.name}</span>
            {item.hint && <span class="check-hint">{item.hint}</span>}
          </span>
        </label>
      ))}
    </fieldset>
  );
}

function Editor({
  assistant,
  onSaved,
  onCancel,
}: {
  assistant: AssistantInfo | null;
  onSaved: (name: string) => void;
  onCancel: () => void;
}): JSX.Element {
  const isNew = assistant === null;
  const readOnly = assistant?.source === "config";
  const [form, setForm] = useState<Form>(() => toForm(assistant?.id ?? "", assistant?.definition ?? null));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [extraCollection, setExtraCollection] = useState("");
  const catalog = useLoad(
    async () => ({
      tools: await optional<ToolInfo>("/v1/tools"),
      sources: await optional<SourceInfo>("/v1/sources"),
      collections: await optional<CollectionInfo>("/v1/knowledge/collections"),
    }),
    [],
  );
  const set = <K extends keyof Form>(key: K, value: Form[K]): void => setForm((f) => ({ ...f, [key]: value }));

  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!NAME.test(form.name)) {
      setError(t("asst.badName"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api(`/v1/assistants/${encodeURIComponent(form.name)}`, {
        method: "PUT",
        body: toBody(form, assistant?.definition ?? null),
      });
      toast(t("asst.saved", { name: form.name }), "success");
      onSaved(form.name);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  if (readOnly && assistant) {
    return (
      <div class="card">
        <h2 class="card-title">{assistant.id}</h2>
        <p class="muted">{assistant.description}</p>
        <p>
          <span class="badge">{t("asst.configured")}</span> {t("asst.configuredHelp")}
        </p>
        <p class="muted small">
          {t("asst.model")}: <code>{assistant.model}</code>
        </p>
      </div>
    );
  }

  const tools = catalog.data?.tools ?? [];
  const sources = catalog.data?.sources ?? [];
  const collections = catalog.data?.collections ?? [];
  return (
    <form class="card editor" onSubmit={(e) => void save(e)}>
      <h2 class="card-title">{isNew ? t("asst.new") : t("asst.edit", { name: form.name })}</h2>
      <div class="form-grid">
        <div class="field">
          <label for="asst-name">{t("asst.name")}</label>
          <input
            id="asst-name"
            required
            disabled={!isNew}
            value={form.name}
            pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}"
            aria-describedby="asst-name-help"
            onInput={(e) => set("name", e.currentTarget.value)}
          />
          <small id="asst-name-help" class="muted">
            {t("asst.nameHelp")}
          </small>
        </div>
        <div class="field">
          <label for="asst-model">{t("asst.model")}</label>
          <input
            id="asst-model"
            value={form.model}
            placeholder={assistant?.model ?? t("asst.modelDefault")}
            aria-describedby="asst-model-help"
            onInput={(e) => set("model", e.currentTarget.value)}
          />
          <small id="asst-model-help" class="muted">
            {t("asst.modelHelp")}
          </small>
        </div>
        <label class="field span-all">
          <span>{t("asst.description")}</span>
          <input value={form.description} onInput={(e) => set("description", e.currentTarget.value)} />
        </label>
        <label class="field span-all">
          <span>{t("asst.prompt")}</span>
          <textarea rows={8} value={form.system_prompt} onInput={(e) => set("system_prompt", e.currentTarget.value)} />
        </label>
      </div>

      <div class="editor-section">
        <h3>{t("asst.tools")}</h3>
        <label class="check">
          <input type="checkbox" checked={form.allTools} onChange={(e) => set("allTools", e.currentTarget.checked)} />
          {t("asst.allTools")}
        </label>
        {!form.allTools &&
          (catalog.loading ? (
            <Skeleton lines={2} />
          ) : (
            <Checklist
              legend={t("asst.tools")}
              items={tools.map((x) => ({ name: x.name, hint: x.description ?? "" }))}
              chosen={form.tools}
              onChange={(v) => set("tools", v)}
              empty={t("asst.noTools")}
            />
          ))}
      </div>

      <div class="editor-section">
        <h3>{t("asst.collections")}</h3>
        <Checklist
          legend={t("asst.collections")}
          items={collections.map((c) => ({ name: c.name, hint: t("asst.docCount", { n: c.documents }) }))}
          chosen={form.collections}
          onChange={(v) => set("collections", v)}
          empty={t("asst.noCollections")}
        />
        <div class="row">
          <input
            aria-label={t("asst.addCollection")}
            placeholder={t("asst.addCollection")}
            value={extraCollection}
            onInput={(e) => setExtraCollection(e.currentTarget.value)}
          />
          <button
            type="button"
            class="btn small"
            disabled={!extraCollection.trim()}
            onClick={() => {
              const name = extraCollection.trim();
              if (name && !form.collections.includes(name)) set("collections", [...form.collections, name]);
              setExtraCollection("");
            }}
          >
            <Icon name="plus" size={14} /> {t("common.add")}
          </button>
        </div>
        {form.collections.length > 0 && (
          <label class="field inline">
            <span>{t("asst.retrieval")}</span>
            <select value={form.retrieval} onChange={(e) => set("retrieval", e.currentTarget.value as Form["retrieval"])}>
              <option value="tool">{t("asst.retrievalTool")}</option>
              <option value="always">{t("asst.retrievalAlways")}</option>
            </select>
          </label>
        )}
      </div>

      <div class="editor-section">
        <h3>{t("asst.sources")}</h3>
        <label class="check">
          <input type="checkbox" checked={form.allSources} onChange={(e) => set("allSources", e.currentTarget.checked)} />
          {t("asst.allSources")}
        </label>
        {!form.allSources && (
          <Checklist
            legend={t("asst.sources")}
            items={sources.map((s) => ({ name: s.name, hint: [s.dialect, s.tables?.join(", ")].filter(Boolean).join(" · ") }))}
            chosen={form.sources}
            onChange={(v) => set("sources", v)}
            empty={t("asst.noSources")}
          />
        )}
      </div>

      <div class="editor-section form-grid">
        <h3 class="span-all">{t("asst.access")}</h3>
        <label class="field">
          <span>{t("asst.roles")}</span>
          <input value={form.roles} placeholder="user, builder" onInput={(e) => set("roles", e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>{t("asst.groups")}</span>
          <input value={form.groups} onInput={(e) => set("groups", e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>{t("asst.users")}</span>
          <input value={form.users} onInput={(e) => set("users", e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>{t("asst.temperature")}</span>
          <input type="number" min={0} max={2} step={0.1} value={form.temperature} placeholder={t("asst.default")} onInput={(e) => set("temperature", e.currentTarget.value)} />
        </label>
        <p class="muted small span-all">{t("asst.accessHelp")}</p>
      </div>

      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div class="row end">
        <button type="button" class="btn ghost" onClick={onCancel}>
          {t("common.cancel")}
        </button>
        <button type="submit" class="btn primary" disabled={busy}>
          {t("common.save")}
        </button>
      </div>
    </form>
  );
}

export function AssistantsTab(): JSX.Element {
  const list = useLoad(() => api<ListOf<AssistantInfo>>("/v1/assistants"), []);
  const [selected, setSelected] = useState<string | "new" | null>(null);
  const assistants = list.data?.data ?? [];
  const current = selected === "new" ? null : (assistants.find((a) => a.id === selected) ?? null);

  const remove = async (name: string): Promise<void> => {
    try {
      await api(`/v1/assistants/${encodeURIComponent(name)}`, { method: "DELETE" });
      toast(t("asst.deleted", { name }), "success");
      setSelected(null);
      list.reload();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  return (
    <div class="split">
      <section class="card list-pane">
        <div class="row between">
          <h2 class="card-title">{t("admin.assistants")}</h2>
          <button type="button" class="btn small primary" onClick={() => setSelected("new")}>
            <Icon name="plus" size={14} /> {t("asst.new")}
          </button>
        </div>
        {list.error && <ErrorBanner error={list.error} onRetry={list.reload} />}
        {list.loading && !list.data && <Skeleton lines={4} />}
        {list.data && assistants.length === 0 && <Empty icon="spark" title={t("asst.none")} />}
        <ul class="pick-list">
          {assistants.map((a) => (
            <li key={a.id} class={a.id === selected ? "active" : undefined}>
              <button type="button" class="pick" onClick={() => setSelected(a.id)} aria-current={a.id === selected ? "true" : undefined}>
                <span class="pick-name">
                  {a.id} {a.source === "config" && <span class="badge">{t("asst.configured")}</span>}
                </span>
                <span class="pick-hint">{a.description || a.model}</span>
              </button>
              {a.source === "stored" && a.definition && (
                <ConfirmButton label={t("common.delete")} onConfirm={() => void remove(a.id)} />
              )}
            </li>
          ))}
        </ul>
      </section>
      <div class="edit-pane">
        {selected === null ? (
          <div class="card">
            <Empty icon="spark" title={t("asst.pick")}>
              {t("asst.pickHelp")}
            </Empty>
          </div>
        ) : (
          <Editor
            // A new key, a fresh form: for another assistant, or once the one picked has
            // loaded (just after a save). Never on a mere reload of the list, which would
            // wipe what is being typed.
            key={`${selected}:${current ? "loaded" : "none"}`}
            assistant={current}
            onSaved={(name) => {
              list.reload();
              setSelected(name);
            }}
            onCancel={() => setSelected(null)}
          />
        )}
      </div>
    </div>
  );
}
