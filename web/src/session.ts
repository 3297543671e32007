/**
 * Who is using the page: the sign-in methods the server offers (`/v1/auth/methods`) and the
 * signed-in user (`/v1/me`). A tiny store with a hook; the app reloads it after sign-in.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, api } from "./api/client";
import type { AuthMethods, Me } from "./api/types";

export interface SessionState {
  status: "loading" | "signed-in" | "signed-out" | "error";
  me: Me | null;
  methods: AuthMethods;
  error?: string;
}

const DEFAULT_METHODS: AuthMethods = { single_user: false, api_key: true, oidc: false };

let state: SessionState = { status: "loading", me: null, methods: DEFAULT_METHODS };
const listeners = new Set<(s: SessionState) => void>();

function set(next: SessionState): void {
  state = next;
  for (const listener of listeners) listener(state);
}

export function getSession(): SessionState {
  return state;
}

export function useSession(): SessionState {
  const [value, setValue] = useState(state);
  useEffect(() => {
    listeners.add(setValue);
    setValue(state);
    return () => {
      listeners.delete(setValue);
    };
  }, []);
  return value;
}

async function loadMethods(): Promise<AuthMethods> {
  try {
    return await api<AuthMethods>("/v1/auth/methods", { quiet401: true });
  } catch {
    return DEFAULT_METHODS;
  }
}

async function loadMe(): Promise<Me> {
  try {
    return await api<Me>("/v1/me", { quiet401: true });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  // A server without /v1/me: the session route says the user and roles.
  const who = await api<{ user: string; tenant: string; roles: string[] }>("/v1/auth/session", {
    quiet401: true,
  });
  const roles = who.roles ?? [];
  return {
    user: who.user,
    tenant: who.tenant,
    roles,
    groups: [],
    is_admin: roles.includes("admin"),
    is_builder: roles.includes("admin") || roles.includes("builder"),
  };
}

/** Ask the server who we are (and how one signs in). */
export async function loadSession(): Promise<SessionState> {
  const methods = await loadMethods();
  try {
    const me = await loadMe();
    set({ status: "signed-in", me, methods });
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      set({ status: "signed-out", me: null, methods });
    } else {
      set({
        status: "error",
        me: null,
        methods,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return state;
}

/** Forget the user (after a 401 or a sign-out). */
export function signedOut(): void {
  set({ ...state, status: "signed-out", me: null });
}
