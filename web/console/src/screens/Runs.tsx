// Agent runs: the list, and one run with its events streamed live (SSE).
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import {
  streamRunEvents,
  type components,
  type RunEvent,
} from "@enterprise-automation/api-client";
import { api, ApiProblem, baseUrl, session, unwrap } from "../api.ts";
import { ErrorAlert, formatTime, Link, Pager, Screen } from "../ui.tsx";
import { ApprovalPanel, type Decision } from "./RunActions.tsx";

type AgentRun = components["schemas"]["AgentRun"];
type RunStatus = components["schemas"]["AgentRunStatus"];
const STATUSES: RunStatus[] = ["queued", "in_progress", "requires_action", "completed", "failed", "cancelled", "incomplete", "expired"];
const PAGE_SIZE = 20;

export function Runs() {
  const [page, setPage] = useState(1);
  const [status, setStatus] = useState<RunStatus | "">("");
  const list = useQuery({
    queryKey: ["runs", page, status],
    placeholderData: keepPreviousData,
    refetchInterval: 5_000,
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/agent-runs", {
          params: { query: { skip: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE, ...(status ? { status } : {}) } },
        }),
      ),
  });
  return (
    <Screen title="Agent runs">
      <p className="muted">Start a run from an agent on the Agents screen.</p>
      <div className="filters">
        <div className="field">
          <label htmlFor="r-status">Status</label>
          <select
            id="r-status"
            value={status}
            onChange={(e) => {
              setStatus(e.target.value as RunStatus | "");
              setPage(1);
            }}
          >
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </div>
      </div>
      <ErrorAlert error={list.error} onRetry={() => void list.refetch()} />
      {list.data && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="sr-only">Agent runs</caption>
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Agent</th>
                  <th scope="col">Status</th>
                  <th scope="col">Input</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <Link to={`/runs/${r.id}`}>Run #{r.id}</Link>
                    </td>
                    <td>#{r.agent_id}</td>
                    <td>
                      <span className={`badge ${r.status}`}>{r.status}</span>
                    </td>
                    <td className="clip">{r.input}</td>
                    <td>{formatTime(r.created_at)}</td>
                  </tr>
                ))}
                {list.data.items.length === 0 && (
                  <tr>
                    <td colSpan={5}>No runs.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <Pager label="Run pages" page={page} totalPages={list.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

interface Live {
  status: string | undefined;
  output: string;
  events: RunEvent[];
  done: boolean;
  error: unknown;
}

/**
 * Reads the run's events as they happen. The stream replays from the first event, so
 * the screen is right after a reload too; an expired access token is refreshed once and
 * the stream resumed after the last event seen.
 */
function useRunEvents(runId: number, onChange: () => void): Live {
  const [live, setLive] = useState<Live>({ status: undefined, output: "", events: [], done: false, error: undefined });
  useEffect(() => {
    const abort = new AbortController();
    setLive({ status: undefined, output: "", events: [], done: false, error: undefined });
    void (async () => {
      let lastEventId: string | undefined;
      let refreshed = false;
      for (;;) {
        try {
          for await (const ev of streamRunEvents(runId, {
            baseUrl,
            token: () => session.tokens?.access_token,
            signal: abort.signal,
            ...(lastEventId ? { lastEventId } : {}),
          })) {
            lastEventId = ev.id;
            // A new status may bring new fields (a run waiting for approval names its tool calls).
            if (ev.event === "run.status" || ev.event === "run.requires_action") onChange();
            setLive((old) => ({
              ...old,
              events: [...old.events, ev],
              status: ev.data.status ?? ev.data.run?.status ?? old.status,
              output: ev.data.delta ? old.output + ev.data.delta : (ev.data.run?.output ?? old.output),
            }));
          }
          if (abort.signal.aborted) return;
          setLive((old) => ({ ...old, done: true }));
          onChange();
          return;
        } catch (err) {
          if (abort.signal.aborted) return;
          if (err instanceof ApiProblem && err.status === 401 && !refreshed) {
            refreshed = true;
            try {
              await session.refresh();
              continue;
            } catch {
              // the session is over: the console returns to the login screen
            }
          }
          setLive((old) => ({ ...old, error: err }));
          return;
        }
      }
    })();
    return () => abort.abort();
  }, [runId, onChange]);
  return live;
}

export function RunDetail({ runId }: { runId: number }) {
  const queryClient = useQueryClient();
  const run = useQuery({
    queryKey: ["run", runId],
    queryFn: async () => unwrap(await api.GET("/api/v1/agent-runs/{run_id}", { params: { path: { run_id: runId } } })),
  });
  const [onChange] = useState(() => () => void queryClient.invalidateQueries({ queryKey: ["run", runId] }));
  const live = useRunEvents(runId, onChange);
  const [decidedElsewhere, setDecidedElsewhere] = useState(false);
  /** Sends the decisions; the run screen then follows the run as it goes on. */
  const decide = async (decisions: Decision[]): Promise<void> => {
    setDecidedElsewhere(false);
    try {
      const queued = unwrap(
        await api.POST("/api/v1/agent-runs/{run_id}/approvals", { params: { path: { run_id: runId } }, body: { decisions } }),
      );
      queryClient.setQueryData(["run", runId], queued);
    } catch (err) {
      // 409: decided elsewhere, expired or cancelled; show the run as it is now.
      if (!(err instanceof ApiProblem && err.status === 409)) throw err;
      setDecidedElsewhere(true);
      await queryClient.invalidateQueries({ queryKey: ["run", runId] });
    }
  };
  const r: AgentRun | undefined = run.data;
  const status = live.status ?? r?.status;
  return (
    <Screen title={`Run #${runId}`}>
      <p>
        <Link to="/runs">All runs</Link>
      </p>
      <ErrorAlert error={run.error} onRetry={() => void run.refetch()} />
      {r && (
        <dl className="facts">
          <div>
            <dt>Status</dt>
            <dd>
              <span className={`badge ${status ?? ""}`} data-testid="run-status" aria-live="polite">
                {status}
              </span>
              {!live.done && !live.error && <span className="muted"> · live</span>}
            </dd>
          </div>
          <div>
            <dt>Agent</dt>
            <dd>#{r.agent_id}</dd>
          </div>
          <div>
            <dt>Task</dt>
            <dd>{r.task_id === null ? "—" : `#${r.task_id}`}</dd>
          </div>
          <div>
            <dt>Tokens</dt>
            <dd>{r.usage.total_tokens}</dd>
          </div>
          <div>
            <dt>Input</dt>
            <dd>{r.input}</dd>
          </div>
          {r.error && (
            <div>
              <dt>Error</dt>
              <dd>
                {r.error.code}: {r.error.message}
              </dd>
            </div>
          )}
        </dl>
      )}
      {decidedElsewhere && (
        <div className="alert conflict" role="alert">
          <span>
            Your decision was not taken: this run no longer waits for one (someone else decided, or it expired or was
            cancelled). It is shown as it is now.
          </span>
        </div>
      )}
      {r && (
        <ApprovalPanel key={r.required_action?.tool_calls.map((c) => c.id).join(" ") ?? "none"} run={r} decide={decide} />
      )}
      <h2>Output</h2>
      <pre className="output" data-testid="run-output" aria-live="polite">
        {live.output || r?.output || ""}
      </pre>
      <ErrorAlert error={live.error} />
      <h2>Events</h2>
      <ol className="events" aria-live="polite" aria-relevant="additions" data-testid="run-events">
        {live.events.map((ev) => (
          <li key={ev.id}>
            <code>{ev.event}</code> {describeEvent(ev)}
          </li>
        ))}
      </ol>
    </Screen>
  );
}

function describeEvent(ev: RunEvent): string {
  const d = ev.data;
  if (d.delta) return JSON.stringify(d.delta);
  if (d.step) return `${d.step.name}(${JSON.stringify(d.step.arguments)})`;
  if (d.status) return d.status + (d.attempt && d.attempt > 1 ? ` (attempt ${d.attempt})` : "");
  if (d.run) return d.run.status;
  return "";
}
