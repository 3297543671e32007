/**
 * The interface's language: English or Chinese (zh-CN). It follows the browser's languages
 * until the user picks one (stored in localStorage `graft.lang`); `<html lang>` follows it.
 * Every string comes from `en.ts` / `zh.ts`, which have the same keys.
 */
import { useEffect, useState } from "preact/hooks";
import { en, type Key } from "./en";
import { zh } from "./zh";

export type { Key };
export type Lang = "en" | "zh-CN";
export const LANGS: readonly Lang[] = ["en", "zh-CN"];
export const STORAGE_KEY = "graft.lang";

const dictionaries: Record<Lang, Record<Key, string>> = { en, "zh-CN": zh };

/** The language to use: the stored choice, else the first browser language we speak. */
export function detectLang(stored: string | null, languages: readonly string[]): Lang {
  if (stored === "en" || stored === "zh-CN") return stored;
  for (const lang of languages) {
    const lower = lang.toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

function storedLang(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

let current: Lang =
  typeof navigator === "undefined"
    ? "en"
    : detectLang(storedLang(), navigator.languages?.length ? navigator.languages : [navigator.language]);
const listeners = new Set<(lang: Lang) => void>();

export function getLang(): Lang {
  return current;
}

/** Switch the language (and remember it). */
export function setLang(lang: Lang): void {
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    /* private mode: just for this page */
  }
  applyLang();
  for (const listener of listeners) listener(lang);
}

export function applyLang(): void {
  if (typeof document !== "undefined") document.documentElement.lang = current;
}

/** Fill `{name}` placeholders of a dictionary string. */
export function format(text: string, vars?: Record<string, string | number>): string {
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in vars ? String(vars[name]) : whole,
  );
}

/** The current language's string for `key`. */
export function t(key: Key, vars?: Record<string, string | number>): string {
  return format(dictionaries[current][key] ?? en[key] ?? key, vars);
}

/** A component that uses `t` calls this to re-render when the language changes. */
export function useLang(): Lang {
  const [lang, setState] = useState(current);
  useEffect(() => {
    listeners.add(setState);
    return () => {
      listeners.delete(setState);
    };
  }, []);
  return lang;
}
