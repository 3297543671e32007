/** Short notices at the bottom of the screen (errors, "copied", "saved"). */
import { useEffect, useState } from "preact/hooks";

export interface Toast {
  id: number;
  text: string;
  kind: "info" | "error" | "success";
}

let toasts: Toast[] = [];
let next = 1;
const listeners = new Set<(t: Toast[]) => void>();

function emit(): void {
  for (const listener of listeners) listener(toasts);
}

export function toast(text: string, kind: Toast["kind"] = "info", ms = 4000): void {
  const id = next++;
  toasts = [...toasts.slice(-3), { id, text, kind }];
  emit();
  setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  toasts = toasts.filter((t) => t.id !== id);
  emit();
}

export function useToasts(): Toast[] {
  const [value, setValue] = useState(toasts);
  useEffect(() => {
    listeners.add(setValue);
    return () => {
      listeners.delete(setValue);
    };
  }, []);
  return value;
}
