/**
 * Hash routing (`#/chat/<id>`, `#/knowledge`, `#/admin/users`...): the server only ever
 * serves `/`, so every page is a hash. `useRoute` re-renders on `hashchange`.
 */
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Path segments after `#/`, decoded. */
  parts: string[];
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  return { parts, params };
}

export function currentRoute(): Route {
  return parseHash(location.hash);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = (): void => setRoute(currentRoute());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** Go to a route (`/chat`, `/login`...). */
export function navigate(path: string, replace = false): void {
  const hash = `#${path.startsWith("/") ? path : `/${path}`}`;
  if (location.hash === hash) return;
  if (replace) {
    history.replaceState(null, "", hash);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}

let chatPath = "/chat";

/** The chat's current route, so the nav's "Chat" link returns to the open conversation. */
export function setChatPath(path: string): void {
  chatPath = path;
}

export function getChatPath(): string {
  return chatPath;
}
