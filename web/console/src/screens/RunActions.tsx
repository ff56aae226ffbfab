// The approval panel of a run that waits for its tool calls to be approved.
//
// A run in status `requires_action` carries `required_action.tool_calls`: the calls the
// model wants to make. The panel lists them with their arguments editable (checked as a
// JSON object before anything is sent) and an optional reason; the decisions, exactly one
// for each call, are sent together through `decide`. A single call is decided by its own
// Approve or Reject button; with several, each button marks its call and one button sends
// them all. A 422 names the decision (`decisions.<i>.<field>`): its message appears next
// to that call.
import { useState } from "react";
import type { components } from "@enterprise-automation/api-client";
import { ApiProblem, describeError } from "../api.ts";
import { formatTime } from "../ui.tsx";

type AgentRun = components["schemas"]["AgentRun"];
type PendingToolCall = components["schemas"]["AgentRunPendingToolCall"];
/** One decision as the API takes it. */
export type Decision = components["schemas"]["AgentRunDecision"];

/** The calls a run waits on, or undefined when it waits on nothing. */
export function pendingToolCalls(run: AgentRun): PendingToolCall[] | undefined {
  if (run.status !== "requires_action") return undefined;
  return run.required_action?.tool_calls ?? [];
}

interface Choice {
  decision: Decision["decision"] | undefined;
  args: string;
  reason: string;
}

/** The problem's field errors naming decision `i`, and those naming no decision. */
function decisionErrors(err: unknown, i: number): string[] {
  if (!(err instanceof ApiProblem)) return [];
  return err.errors
    .filter((e) => e.field.replace(/^\/+/, "").replace(/^body\./, "").replace(/\//g, ".").startsWith(`decisions.${i}.`))
    .map((e) => `${e.field.split(".").pop() ?? ""}: ${e.message}`);
}

export function ApprovalPanel({ run, decide }: { run: AgentRun; decide?: (decisions: Decision[]) => Promise<void> }) {
  const calls = pendingToolCalls(run);
  const [choices, setChoices] = useState<Record<string, Choice>>({});
  const [localErrors, setLocalErrors] = useState<Record<string, string>>({});
  const [sentIds, setSentIds] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const [sending, setSending] = useState(false);
  if (!calls) return null;
  const choiceOf = (c: PendingToolCall): Choice =>
    choices[c.id] ?? { decision: undefined, args: JSON.stringify(c.arguments ?? {}, null, 2), reason: "" };
  const setChoice = (c: PendingToolCall, patch: Partial<Choice>): void =>
    setChoices((old) => ({ ...old, [c.id]: { ...choiceOf(c), ...patch } }));

  /** Builds the decisions (arguments parsed as a JSON object) or marks the calls whose arguments are not. */
  const build = (all: Record<string, Choice>): Decision[] | undefined => {
    const bad: Record<string, string> = {};
    const out: Decision[] = [];
    for (const c of calls) {
      const ch = all[c.id] ?? choiceOf(c);
      if (!ch.decision) return undefined;
      const d: Decision = { tool_call_id: c.id, decision: ch.decision };
      if (ch.reason.trim()) d.reason = ch.reason.trim();
      if (ch.decision === "approve") {
        let parsed: unknown;
        try {
          parsed = JSON.parse(ch.args);
        } catch {
          bad[c.id] = "The arguments are not valid JSON.";
          continue;
        }
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
          bad[c.id] = "The arguments must be a JSON object.";
          continue;
        }
        // Only edited arguments are sent: unchanged ones are the model's anyway.
        if (JSON.stringify(parsed) !== JSON.stringify(c.arguments ?? {})) d.arguments = parsed as Record<string, unknown>;
      }
      out.push(d);
    }
    setLocalErrors(bad);
    return Object.keys(bad).length ? undefined : out;
  };
  const send = async (all: Record<string, Choice>): Promise<void> => {
    const decisions = build(all);
    if (!decisions || !decide) return;
    setError(undefined);
    setSending(true);
    setSentIds(decisions.map((d) => d.tool_call_id));
    try {
      await decide(decisions);
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
    }
  };
  const mark = (c: PendingToolCall, decision: Decision["decision"]): void => {
    const next = { ...choices, [c.id]: { ...choiceOf(c), decision } };
    setChoices(next);
    if (calls.length === 1) void send(next);
  };
  const placed = error instanceof ApiProblem && error.status === 422 && sentIds.some((_, i) => decisionErrors(error, i).length > 0);
  const allMarked = calls.every((c) => choiceOf(c).decision);
  return (
    <section className="panel approval" aria-labelledby="approval-title">
      <h2 id="approval-title">Waiting for approval</h2>
      {run.required_action && (
        <p className="muted">Decide by {formatTime(run.required_action.expires_at)}; after that the run expires.</p>
      )}
      {error !== undefined && !placed && (
        <div className="alert error" role="alert">
          {describeError(error)}
          {error instanceof ApiProblem && error.errors.length > 0 && `: ${error.errors.map((e) => e.message).join("; ")}`}
        </div>
      )}
      {calls.map((c) => {
        const ch = choiceOf(c);
        const i = sentIds.indexOf(c.id);
        const messages = [...(localErrors[c.id] ? [localErrors[c.id] ?? ""] : []), ...(i >= 0 ? decisionErrors(error, i) : [])];
        const argsId = `args-${c.id}`;
        const errId = `err-${c.id}`;
        return (
          <div className="tool-call" key={c.id} role="group" aria-label={`Tool call ${c.name} (${c.id})`}>
            <h3>
              <code>{c.name}</code> <span className="muted">{c.id}</span>
            </h3>
            <label htmlFor={argsId}>Arguments (JSON)</label>
            <textarea
              id={argsId}
              rows={5}
              spellCheck={false}
              value={ch.args}
              aria-invalid={messages.length > 0}
              {...(messages.length ? { "aria-describedby": errId } : {})}
              onChange={(e) => {
                // An edit answers the messages about these arguments.
                setChoice(c, { args: e.target.value });
                setLocalErrors(({ [c.id]: _, ...rest }) => rest);
                setError(undefined);
              }}
            />
            <label htmlFor={`reason-${c.id}`}>Reason (optional; the model reads it on a rejection)</label>
            <input id={`reason-${c.id}`} value={ch.reason} onChange={(e) => setChoice(c, { reason: e.target.value })} />
            {messages.length > 0 && (
              <p id={errId} className="field-error" role="alert">
                {messages.join(" ")}
              </p>
            )}
            {decide ? (
              <div className="buttons">
                <button
                  type="button"
                  className="primary"
                  disabled={sending}
                  aria-pressed={calls.length > 1 ? ch.decision === "approve" : undefined}
                  aria-label={`Approve ${c.name}`}
                  onClick={() => mark(c, "approve")}
                >
                  Approve
                </button>
                <button
                  type="button"
                  disabled={sending}
                  aria-pressed={calls.length > 1 ? ch.decision === "reject" : undefined}
                  aria-label={`Reject ${c.name}`}
                  onClick={() => mark(c, "reject")}
                >
                  Reject
                </button>
              </div>
            ) : (
              <p className="muted">This server does not take decisions on tool calls.</p>
            )}
          </div>
        );
      })}
      {decide && calls.length > 1 && (
        <div className="buttons">
          <button type="button" className="primary" disabled={!allMarked || sending} onClick={() => void send(choices)}>
            Send {calls.length} decisions
          </button>
        </div>
      )}
      {sending && (
        <p role="status" className="muted">
          Sending…
        </p>
      )}
    </section>
  );
}
