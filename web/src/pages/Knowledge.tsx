/**
 * Knowledge: pick a collection, upload files into it (one request per file, each with its
 * own progress bar and result), see its documents, delete them (builders), and search.
 */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, query, unauthorized } from "../api/client";
import type { Citation, CollectionInfo, DocumentInfo, ListOf, Me, UploadResult } from "../api/types";
import { Empty, ErrorBanner, Skeleton, Table, errorText } from "../components/Common";
import { Icon } from "../components/Icon";
import { t } from "../i18n";
import { formatBytes, formatDateTime } from "../lib/format";
import { documentRoute } from "../lib/links";
import { uploadFile } from "../lib/upload";
import { toast } from "../toast";

const LAST = "graft.collection";

interface UploadRow {
  id: number;
  name: string;
  size: number;
  progress: number;
  status: "uploading" | UploadResult["status"];
  result?: UploadResult;
  collection: string;
}

let rowId = 0;

function lastCollection(): string {
  try {
    return localStorage.getItem(LAST) ?? "";
  } catch {
    return "";
  }
}

function Search(): JSX.Element {
  const [q, setQ] = useState("");
  const [hits, setHits] = useState<Citation[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (!q.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const found = await api<ListOf<Citation>>(`/v1/knowledge/search${query({ q: q.trim(), k: 8 })}`);
      setHits(found.data);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card">
      <h2 class="card-title">{t("kb.search")}</h2>
      <form class="row" onSubmit={(e) => void run(e)}>
        <input
          type="search"
          class="grow"
          aria-label={t("kb.search")}
          placeholder={t("kb.searchPlaceholder")}
          value={q}
          onInput={(e) => setQ(e.currentTarget.value)}
        />
        <button type="submit" class="btn" disabled={busy || !q.trim()}>
          <Icon name="search" size={15} /> {t("kb.searchButton")}
        </button>
      </form>
      {error && <ErrorBanner error={error} />}
      {hits && hits.length === 0 && <p class="muted">{t("kb.noHits")}</p>}
      {hits && hits.length > 0 && (
        <ol class="hits">
          {hits.map((hit) => (
            <li key={`${hit.document_id}-${hit.chunk_id}`}>
              <a href={documentRoute(hit.document_id, hit.chunk_id)}>{hit.title || hit.source}</a>
              <span class="muted small"> · {hit.collection}</span>
              <p class="hit-text">{(hit.text ?? hit.snippet ?? "").slice(0, 280)}</p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function KnowledgePage({ me }: { me: Me }): JSX.Element {
  const builder = me.is_builder || me.is_admin;
  const [collections, setCollections] = useState<CollectionInfo[]>([]);
  const [collection, setCollection] = useState(lastCollection);
  const [documents, setDocuments] = useState<DocumentInfo[] | null>(null);
  const [docsError, setDocsError] = useState<string | null>(null);
  const [docsLoading, setDocsLoading] = useState(false);
  const [uploads, setUploads] = useState<UploadRow[]>([]);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const name = collection.trim();

  const loadCollections = async (): Promise<void> => {
    try {
      const list = await api<ListOf<CollectionInfo>>("/v1/knowledge/collections");
      setCollections(list.data);
      if (!lastCollection() && list.data[0]) setCollection((c) => c || (list.data[0]?.name ?? ""));
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  const loadDocuments = async (which: string): Promise<void> => {
    if (!which) {
      setDocuments(null);
      return;
    }
    setDocsLoading(true);
    try {
      const list = await api<ListOf<DocumentInfo>>(`/v1/knowledge/collections/${encodeURIComponent(which)}/documents`);
      if (which === collectionRef.current.trim()) {
        setDocuments(list.data);
        setDocsError(null);
      }
    } catch (err) {
      if (which === collectionRef.current.trim()) {
        setDocuments([]);
        setDocsError(errorText(err));
      }
    } finally {
      setDocsLoading(false);
    }
  };

  const collectionRef = useRef(collection);
  collectionRef.current = collection;

  useEffect(() => {
    void loadCollections();
  }, []);

  useEffect(() => {
    try {
      localStorage.setItem(LAST, name);
    } catch {
      /* ignore */
    }
    const timer = setTimeout(() => void loadDocuments(name), 250);
    return () => clearTimeout(timer);
  }, [name]);

  const upload = (files: FileList | File[] | null): void => {
    if (!files || !name) {
      if (!name) toast(t("kb.pickCollection"), "error");
      return;
    }
    const target = name;
    for (const file of Array.from(files)) {
      const row: UploadRow = { id: ++rowId, name: file.name, size: file.size, progress: 0, status: "uploading", collection: target };
      setUploads((list) => [row, ...list]);
      const update = (patch: Partial<UploadRow>): void =>
        setUploads((list) => list.map((r) => (r.id === row.id ? { ...r, ...patch } : r)));
      const handle = uploadFile(target, file, (progress) => update({ progress }), unauthorized);
      void handle.promise.then((result) => {
        update({ status: result.status, result, progress: 1 });
        if (result.status !== "failed") {
          void loadDocuments(target);
          void loadCollections();
        }
      });
    }
    if (fileInput.current) fileInput.current.value = "";
  };

  const remove = async (doc: DocumentInfo): Promise<void> => {
    try {
      await api(`/v1/knowledge/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
      setDocuments((list) => (list ?? []).filter((d) => d.id !== doc.id));
      toast(t("kb.deleted", { title: doc.title }), "success");
      void loadCollections();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  const statusText = (row: UploadRow): string => {
    if (row.status === "uploading") return row.progress >= 1 ? t("kb.processing") : `${Math.round(row.progress * 100)}%`;
    if (row.status === "failed") return row.result?.error ?? t("kb.failed");
    const chunks = row.result?.chunks;
    return `${t(`kb.status.${row.status}`)}${chunks !== undefined ? ` · ${t("kb.chunks", { n: chunks })}` : ""}`;
  };

  return (
    <div class="page">
      <div class="page-head">
        <h1>{t("kb.title")}</h1>
        <p class="muted">{t("kb.subtitle")}</p>
      </div>
      <section class="card">
        <div class="row wrap">
          <label class="field grow">
            <span>{t("kb.collection")}</span>
            <input
              data-testid="collection"
              list="collections"
              value={collection}
              placeholder={t("kb.collectionPlaceholder")}
              onInput={(e) => setCollection(e.currentTarget.value)}
              autoComplete="off"
            />
            <datalist id="collections">
              {collections.map((c) => (
                <option key={c.name} value={c.name} />
              ))}
            </datalist>
          </label>
        </div>
        {collections.length > 0 && (
          <div class="chips" role="group" aria-label={t("kb.collection")}>
            {collections.map((c) => (
              <button
                key={c.name}
                type="button"
                class={`chip${c.name === name ? " active" : ""}`}
                aria-pressed={c.name === name}
                onClick={() => setCollection(c.name)}
              >
                {c.name} <span class="chip-count">{c.documents}</span>
              </button>
            ))}
          </div>
        )}
        {builder && (
          <div
            class={`dropzone${dragging ? " over" : ""}`}
            onDragOver={(e) => {
              e.preventDefault();
              setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={(e) => {
              e.preventDefault();
              setDragging(false);
              upload(e.dataTransfer?.files ?? null);
            }}
          >
            <Icon name="upload" size={22} />
            <p>{name ? t("kb.dropHint", { collection: name }) : t("kb.pickCollection")}</p>
            <label class={`btn primary${name ? "" : " disabled"}`}>
              {t("kb.chooseFiles")}
              <input
                ref={fileInput}
                class="sr-only"
                type="file"
                multiple
                data-testid="upload-input"
                disabled={!name}
                onChange={(e) => upload(e.currentTarget.files)}
              />
            </label>
          </div>
        )}
        {uploads.length > 0 && (
          <ul class="uploads" aria-label={t("kb.uploads")}>
            {uploads.map((row) => (
              <li key={row.id} class={`upload-row ${row.status}`} data-testid="upload-row" data-status={row.status}>
                <Icon name="file" size={16} />
                <div class="upload-main">
                  <div class="upload-name">
                    <span>{row.name}</span>
                    <span class="muted small">
                      {formatBytes(row.size)} → {row.collection}
                    </span>
                  </div>
                  <progress max={1} value={row.progress} aria-label={t("kb.progress", { name: row.name })} />
                </div>
                <span class={`upload-status ${row.status}`} role={row.status === "failed" ? "alert" : undefined}>
                  {statusText(row)}
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section class="card">
        <h2 class="card-title">
          {name ? t("kb.documentsIn", { collection: name }) : t("kb.documents")}
          {docsLoading && <span class="spinner inline" />}
        </h2>
        {docsError && <ErrorBanner error={docsError} onRetry={() => void loadDocuments(name)} />}
        {!name ? (
          <Empty icon="book" title={t("kb.pickCollection")} />
        ) : documents === null ? (
          <Skeleton lines={4} />
        ) : documents.length === 0 && !docsError ? (
          <Empty icon="file" title={t("kb.noDocuments")}>
            {builder ? t("kb.noDocumentsBuilder") : null}
          </Empty>
        ) : (
          <Table
            columns={[
              t("kb.docTitle"),
              t("kb.source"),
              { label: t("kb.chunksCol"), num: true },
              { label: t("kb.size"), num: true },
              t("kb.updated"),
            ]}
            actions={builder}
          >
            {documents.map((doc) => (
              <tr key={doc.id} data-testid="document" data-id={doc.id}>
                <td>
                  <a href={documentRoute(doc.id)}>{doc.title || doc.id}</a>
                </td>
                <td class="muted ellipsis" title={doc.source}>
                  {doc.source}
                </td>
                <td class="num">{doc.chunks}</td>
                <td class="num">{formatBytes(doc.bytes)}</td>
                <td class="muted">{formatDateTime(doc.updated_at)}</td>
                {builder && (
                  <td class="actions">
                    <button
                      type="button"
                      class="icon-btn danger"
                      data-testid="delete-document"
                      aria-label={t("kb.delete", { title: doc.title })}
                      title={t("kb.deleteShort")}
                      onClick={() => void remove(doc)}
                    >
                      <Icon name="trash" size={15} />
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </Table>
        )}
      </section>
      <Search />
    </div>
  );
}

