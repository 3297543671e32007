/**
 * Same-origin calls to graft's API: cookies ride along, unsafe methods carry the CSRF
 * header, errors become `ApiError` with the server's OpenAI-style message, and a 401
 * sends the user to the login page.
 */
import { csrfHeaders } from "../lib/csrf";
import type { ApiErrorBody } from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let onUnauthorized: () => void = () => {};

/** What to do when a call answers 401 (the app sends the user to `#/login`). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export function unauthorized(): void {
  onUnauthorized();
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Don't redirect to the login page on 401 (the login page's own calls). */
  quiet401?: boolean;
}

/** The headers of a same-origin API request. */
export function requestHeaders(
  method: string,
  extra: Record<string, string> = {},
  json = false,
): Record<string, string> {
  return {
    Accept: "application/json",
    ...(json ? { "Content-Type": "application/json" } : {}),
    ...csrfHeaders(method, document.cookie),
    ...extra,
  };
}

/** An `ApiError` from a failed response (its JSON error message when it has one). */
export async function errorFrom(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  let code: string | null = null;
  try {
    const body = (await response.json()) as ApiErrorBody & { detail?: unknown };
    if (body.error?.message) message = body.error.message;
    else if (typeof body.detail === "string") message = body.detail;
    code = body.error?.code ?? null;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(message, response.status, code);
}

/** Call the API and return the parsed JSON body. */
export async function api<T>(path: string, options: CallOptions = {}): Promise<T> {
  const method = options.method ?? "GET";
  const json = options.body !== undefined;
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: requestHeaders(method, options.headers, json),
  };
  if (json) init.body = JSON.stringify(options.body);
  if (options.signal) init.signal = options.signal;
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError("network", 0, "network");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !options.quiet401) onUnauthorized();
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A query string from the defined values of `params` (with its leading `?`). */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
