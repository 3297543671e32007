import { describe, expect, it } from "vitest";
import { CSRF_HEADER, csrfHeaders, isUnsafe, readCookie } from "../src/lib/csrf";

describe("CSRF header", () => {
  const cookies = "theme=dark; graft_csrf=abc%2F123; other=1";

  it("reads the cookie", () => {
    expect(readCookie(cookies, "graft_csrf")).toBe("abc/123");
    expect(readCookie(cookies, "missing")).toBeNull();
    expect(readCookie("graft_csrf=", "graft_csrf")).toBeNull();
    expect(readCookie("xgraft_csrf=1", "graft_csrf")).toBeNull();
  });

  it("adds the header to unsafe methods only", () => {
    for (const method of ["POST", "put", "PATCH", "DELETE"]) {
      expect(isUnsafe(method)).toBe(true);
      expect(csrfHeaders(method, cookies)).toEqual({ [CSRF_HEADER]: "abc/123" });
    }
    for (const method of ["GET", "head", "OPTIONS", undefined]) {
      expect(isUnsafe(method)).toBe(false);
      expect(csrfHeaders(method, cookies)).toEqual({});
    }
  });

  it("adds nothing without the cookie (API key or single-user mode)", () => {
    expect(csrfHeaders("POST", "")).toEqual({});
    expect(csrfHeaders("DELETE", "theme=dark")).toEqual({});
  });
});
