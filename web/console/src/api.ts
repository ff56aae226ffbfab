// The console's one connection to the API: a session of the generated client whose
// tokens live in sessionStorage, with a fetch that reports the server's reachability and
// waits out 429s for as long as Retry-After asks.
import { useSyncExternalStore } from "react";
import {
  ApiProblem,
  createApiSession,
  unwrap,
  type ApiSession,
  type Tokens,
} from "@enterprise-automation/api-client";

export { ApiProblem, unwrap };

const TOKENS_KEY = "automation.console.tokens";
/** How often one request is retried after a 429 before its problem is shown. */
const MAX_RATE_LIMIT_RETRIES = 3;
/** The longest Retry-After the console waits by itself; longer ones are shown as an error. */
const MAX_RETRY_AFTER_S = 30;

/** What the banner shows: the server unreachable, or a request waiting for its Retry-After. */
export interface Connection {
  down: boolean;
  /** When rate limited: the time (ms since epoch) the request is retried. */
  retryAt: number | undefined;
}

let connection: Connection = { down: false, retryAt: undefined };
const listeners = new Set<() => void>();
function setConnection(next: Partial<Connection>): void {
  const merged = { ...connection, ...next };
  if (merged.down === connection.down && merged.retryAt === connection.retryAt) return;
  connection = merged;
  for (const l of listeners) l();
}
function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
export function useConnection(): Connection {
  return useSyncExternalStore(subscribe, () => connection);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** fetch for the client: marks the server down on network errors, honours Retry-After. */
export async function consoleFetch(request: Request): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    let response: Response;
    try {
      response = await fetch(request.clone());
    } catch (err) {
      if (request.signal.aborted) throw err;
      setConnection({ down: true });
      throw err;
    }
    setConnection({ down: response.status === 502 || response.status === 503 || response.status === 504 });
    if (response.status !== 429 || attempt >= MAX_RATE_LIMIT_RETRIES) return response;
    const seconds = Number(response.headers.get("Retry-After") ?? "1");
    if (!Number.isFinite(seconds) || seconds > MAX_RETRY_AFTER_S) return response;
    const wait = Math.max(seconds, 0) * 1000;
    setConnection({ retryAt: Date.now() + wait });
    await response.body?.cancel();
    await sleep(wait);
    setConnection({ retryAt: undefined });
  }
}

function loadTokens(): Tokens | undefined {
  try {
    const raw = sessionStorage.getItem(TOKENS_KEY);
    if (!raw) return undefined;
    const t = JSON.parse(raw) as Partial<Tokens>;
    return typeof t.access_token === "string" && typeof t.refresh_token === "string"
      ? { access_token: t.access_token, refresh_token: t.refresh_token }
      : undefined;
  } catch {
    return undefined;
  }
}

let loggedIn = false;
const authListeners = new Set<() => void>();

/** The API's origin: the console is served by the same binary. */
export const baseUrl = window.location.origin;

const initial = loadTokens();
loggedIn = initial !== undefined;

/** The one session of the console. A refused refresh forgets the tokens: back to login. */
export const session: ApiSession = createApiSession({
  baseUrl,
  fetch: consoleFetch,
  ...(initial ? { tokens: initial } : {}),
  onTokens(tokens) {
    if (tokens) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
    else sessionStorage.removeItem(TOKENS_KEY);
    const next = tokens !== undefined;
    if (next !== loggedIn) {
      loggedIn = next;
      for (const l of authListeners) l();
    }
  },
});

export const api = session.client;

/** Whether the console holds tokens; turns false when a refresh is refused. */
export function useLoggedIn(): boolean {
  return useSyncExternalStore(
    (l) => {
      authListeners.add(l);
      return () => authListeners.delete(l);
    },
    () => loggedIn,
  );
}

/** Asks the server whether it is up again (for the banner's Retry button). */
export async function probeServer(): Promise<boolean> {
  try {
    const res = await consoleFetch(new Request(`${baseUrl}/api/health`));
    return res.ok;
  } catch {
    return false;
  }
}

/** The message to show for any error a call threw. */
export function describeError(err: unknown): string {
  if (err instanceof ApiProblem) {
    return err.detail ? `${err.title}: ${err.detail}` : err.title;
  }
  if (err instanceof TypeError) return "The server could not be reached.";
  return err instanceof Error ? err.message : String(err);
}

/** The message of the field error naming `field` (body fields), if any. */
export function fieldError(err: unknown, field: string): string | undefined {
  if (!(err instanceof ApiProblem)) return undefined;
  const norm = (f: string): string => f.replace(/^\/+/, "").replace(/^body\./, "").replace(/\//g, ".");
  return err.errors.find((e) => norm(e.field) === field)?.message;
}

/** Whether the error's field errors were all placed next to fields in `known`. */
export function unplacedErrors(err: unknown, known: readonly string[]): boolean {
  if (!(err instanceof ApiProblem)) return true;
  if (err.errors.length === 0) return true;
  return err.errors.some((e) => !known.includes(e.field.replace(/^\/+/, "").replace(/^body\./, "")));
}
