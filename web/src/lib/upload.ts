/**
 * File upload with progress: XMLHttpRequest (fetch has no upload progress), one file per
 * request so each file has its own progress bar and result.
 */
import { csrfHeaders } from "./csrf";
import type { UploadResult } from "../api/types";

export interface UploadHandle {
  promise: Promise<UploadResult>;
  abort: () => void;
}

/** Upload `file` into `collection`; `onProgress` gets 0..1 as the bytes go out. */
export function uploadFile(
  collection: string,
  file: File,
  onProgress: (fraction: number) => void,
  onUnauthorized: () => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<UploadResult>((resolve) => {
    const failed = (error: string): void => resolve({ filename: file.name, status: "failed", error });
    xhr.open("POST", `/v1/knowledge/collections/${encodeURIComponent(collection)}/documents`);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(csrfHeaders("POST", document.cookie))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onerror = () => failed("network");
    xhr.onabort = () => failed("aborted");
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status === 401) onUnauthorized();
      if (xhr.status < 200 || xhr.status >= 300) {
        const message = (body as { error?: { message?: string } } | null)?.error?.message;
        failed(message ?? `${xhr.status} ${xhr.statusText}`);
        return;
      }
      onProgress(1);
      const rows = (body as { data?: UploadResult[] } | null)?.data ?? [];
      resolve(rows[0] ?? { filename: file.name, status: "failed", error: "empty answer" });
    };
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
