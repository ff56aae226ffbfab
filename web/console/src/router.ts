// A small history router for the console's few screens, under /console/.
import { useSyncExternalStore } from "react";

export const BASE = "/console";

function current(): string {
  const p = window.location.pathname;
  const rel = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return rel.replace(/\/+$/, "") || "/";
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => {
  for (const l of listeners) l();
});

/** Goes to a console path such as `/tasks` or `/runs/12` (replacing the current entry with `replace`). */
export function navigate(to: string, replace = false): void {
  if (replace) window.history.replaceState(null, "", BASE + to);
  else window.history.pushState(null, "", BASE + to);
  for (const l of listeners) l();
}

/** The current console path, without /console. */
export function usePath(): string {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    current,
  );
}
