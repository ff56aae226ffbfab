// The approval panel of a run that waits for its tool calls to be approved.
//
// A run in status `requires_action` carries `required_action.tool_calls`: the calls the
// model wants to make. The panel lists them with their arguments editable; the decision
// itself (approve with the edited arguments, or reject) is sent through `decide`, which
// the run screen passes once the API has the approval operations.
import { useState } from "react";
import type { components } from "@enterprise-automation/api-client";

type AgentRun = components["schemas"]["AgentRun"];

/** A tool call waiting for a decision. */
export interface PendingToolCall {
  id: string;
  name: string;
  arguments: unknown;
}

/** One decision: approve (with arguments, possibly edited) or reject (with a reason). */
export type Decision =
  | { tool_call_id: string; approve: true; arguments: Record<string, unknown> }
  | { tool_call_id: string; approve: false; reason: string };

/** The calls a run waits on, or undefined when it waits on nothing. */
export function pendingToolCalls(run: AgentRun): PendingToolCall[] | undefined {
  // Widened: the status and the field arrive with the approvals in the contract.
  const r = run as Omit<AgentRun, "status"> & { status: string; required_action?: { tool_calls?: PendingToolCall[] } | null };
  if (r.status !== "requires_action") return undefined;
  return r.required_action?.tool_calls ?? [];
}

export function ApprovalPanel({
  run,
  decide,
}: {
  run: AgentRun;
  decide?: (decisions: Decision[]) => Promise<void>;
}) {
  const calls = pendingToolCalls(run);
  if (!calls) return null;
  return (
    <section className="panel approval" aria-labelledby="approval-title">
      <h2 id="approval-title">Waiting for approval</h2>
      {calls.map((c) => (
        <ToolCallDecision key={c.id} call={c} decide={decide} />
      ))}
    </section>
  );
}

function ToolCallDecision({ call, decide }: { call: PendingToolCall; decide: ((d: Decision[]) => Promise<void>) | undefined }) {
  const [args, setArgs] = useState(() => JSON.stringify(call.arguments ?? {}, null, 2));
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | undefined>();
  const argsId = `args-${call.id}`;
  const send = async (d: Decision): Promise<void> => {
    setError(undefined);
    try {
      await decide?.([d]);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <div className="tool-call">
      <h3>
        <code>{call.name}</code>
      </h3>
      <label htmlFor={argsId}>Arguments (JSON)</label>
      <textarea id={argsId} rows={5} value={args} onChange={(e) => setArgs(e.target.value)} />
      <label htmlFor={`reason-${call.id}`}>Reason to reject</label>
      <input id={`reason-${call.id}`} value={reason} onChange={(e) => setReason(e.target.value)} />
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      {decide ? (
        <div className="buttons">
          <button
            type="button"
            className="primary"
            onClick={() => {
              let parsed: unknown;
              try {
                parsed = JSON.parse(args);
              } catch {
                setError("The arguments are not valid JSON.");
                return;
              }
              if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
                setError("The arguments must be a JSON object.");
                return;
              }
              void send({ tool_call_id: call.id, approve: true, arguments: parsed as Record<string, unknown> });
            }}
          >
            Approve
          </button>
          <button type="button" onClick={() => void send({ tool_call_id: call.id, approve: false, reason })}>
            Reject
          </button>
        </div>
      ) : (
        <p className="muted">This server does not take decisions on tool calls yet.</p>
      )}
    </div>
  );
}
