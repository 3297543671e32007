/**
 * CSRF: graft's session cookie is SameSite=Strict, and every unsafe request made with it
 * must also carry the `graft_csrf` cookie's value in `X-CSRF-Token` (double submit).
 */

export const CSRF_COOKIE = "graft_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** The value of cookie `name` in a `document.cookie` string, or null. */
export function readCookie(cookies: string, name: string): string | null {
  for (const part of cookies.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    if (!value) return null;
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  }
  return null;
}

/** Whether a request with this method changes state (and so needs the CSRF header). */
export function isUnsafe(method: string | undefined): boolean {
  return !SAFE_METHODS.has((method ?? "GET").toUpperCase());
}

/** The headers to add to a request: the CSRF token for unsafe methods when a cookie has one. */
export function csrfHeaders(method: string | undefined, cookies: string): Record<string, string> {
  if (!isUnsafe(method)) return {};
  const token = readCookie(cookies, CSRF_COOKIE);
  return token ? { [CSRF_HEADER]: token } : {};
}
