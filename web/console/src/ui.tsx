// Shared pieces of the screens: labelled fields with their errors, problem alerts, links.
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { describeError, fieldError } from "./api.ts";
import { BASE, navigate } from "./router.ts";

/** A screen: its title takes the focus when the screen opens, for screen readers and keyboards. */
export function Screen({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const h1 = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Enterprise Automation`;
    h1.current?.focus();
  }, [title]);
  return (
    <section aria-labelledby="screen-title">
      <div className="screen-head">
        <h1 id="screen-title" tabIndex={-1} ref={h1}>
          {title}
        </h1>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A link inside the console that navigates without reloading. */
export function Link({ to, children, ...rest }: { to: string; children: ReactNode; "aria-current"?: "page" }) {
  return (
    <a
      href={BASE + to}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}

type FieldProps = {
  label: string;
  /** The body field the server names in its 422 problems. */
  name: string;
  error?: unknown;
  hint?: string;
  children: (props: { id: string; name: string; "aria-invalid": boolean; "aria-describedby"?: string }) => ReactNode;
};

/** A labelled control; the server's message for this field appears under it. */
export function Field({ label, name, error, hint, children }: FieldProps) {
  const id = useId();
  const message = fieldError(error, name);
  const describedBy = [hint ? `${id}-hint` : "", message ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div className={message ? "field invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({ id, name, "aria-invalid": Boolean(message), ...(describedBy ? { "aria-describedby": describedBy } : {}) })}
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {message && (
        <small id={`${id}-error`} className="field-error" role="alert">
          {message}
        </small>
      )}
    </div>
  );
}

/** An error of a call, as a role=alert box; nothing when there is none. */
export function ErrorAlert({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div className="alert error" role="alert">
      <span>{describeError(error)}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** Previous / next for the skip-and-limit lists. */
export function Pager({
  page,
  totalPages,
  onPage,
  label,
}: {
  page: number;
  totalPages: number;
  onPage: (page: number) => void;
  label: string;
}) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span aria-live="polite">
        Page {page} of {Math.max(totalPages, 1)}
      </span>
      <button type="button" disabled={page >= totalPages} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Parses an optional whole number from a text input. */
export function optionalInt(text: string): number | undefined {
  const t = text.trim();
  if (!t) return undefined;
  const n = Number(t);
  return Number.isInteger(n) ? n : undefined;
}

/**
 * A credential shown this once (a new API key, a webhook signing secret): the server keeps
 * only its hash or never shows it again. The field takes the focus and selects itself; Copy
 * puts it on the clipboard, or selects it when the browser refuses.
 */
export function ShownOnce({
  title,
  intro,
  label,
  value,
  what,
  onClose,
}: {
  title: string;
  intro: ReactNode;
  label: string;
  value: string;
  what: string;
  onClose: () => void;
}) {
  const [copied, setCopied] = useState<"yes" | "failed" | undefined>();
  const ref = useRef<HTMLInputElement>(null);
  const id = useId();
  useEffect(() => ref.current?.focus(), []);
  return (
    <div className="panel new-key" role="region" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>{title}</h2>
      <p>{intro}</p>
      <div className="copy-row">
        <label htmlFor={`${id}-value`} className="sr-only">
          {label}
        </label>
        <input id={`${id}-value`} ref={ref} readOnly value={value} onFocus={(e) => e.target.select()} />
        <button
          type="button"
          onClick={async () => {
            try {
              await navigator.clipboard.writeText(value);
              setCopied("yes");
            } catch {
              ref.current?.select();
              setCopied("failed");
            }
          }}
        >
          Copy
        </button>
      </div>
      <p role="status" className="muted">
        {copied === "yes" ? "Copied to the clipboard." : copied === "failed" ? `Copying was refused: the ${what} is selected, press Ctrl+C.` : ""}
      </p>
      <button type="button" onClick={onClose}>
        Done
      </button>
    </div>
  );
}
