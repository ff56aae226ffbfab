// The audit log (administrators): newest first, paged by the server's cursors.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { components } from "@enterprise-automation/api-client";
import { api, unwrap } from "../api.ts";
import { ErrorAlert, formatTime, Screen } from "../ui.tsx";

const PAGE_SIZE = 25;

export function Audit({ isAdmin }: { isAdmin: boolean }) {
  // The cursors of the pages visited so far; the last one is the page shown ("" = first).
  const [cursors, setCursors] = useState<string[]>([""]);
  const [action, setAction] = useState("");
  const [resourceType, setResourceType] = useState("");
  const cursor = cursors[cursors.length - 1] ?? "";
  const page = useQuery({
    queryKey: ["audit", cursor, action, resourceType],
    placeholderData: keepPreviousData,
    // The operation also offers NDJSON (Accept: application/x-ndjson); the console asks for JSON.
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/audit-events", {
          params: {
            query: {
              limit: PAGE_SIZE,
              ...(cursor ? { cursor } : {}),
              ...(action.trim() ? { action: action.trim() } : {}),
              ...(resourceType.trim() ? { resource_type: resourceType.trim() } : {}),
            },
          },
        }),
      ) as components["schemas"]["AuditEventPage"],
  });
  const reset = (): void => setCursors([""]);
  return (
    <Screen title="Audit log">
      {!isAdmin && <p className="muted">The audit log is for administrators.</p>}
      <form className="filters" role="search" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="a-action">Action</label>
          <input
            id="a-action"
            placeholder="updateTask"
            value={action}
            onChange={(e) => {
              setAction(e.target.value);
              reset();
            }}
          />
        </div>
        <div className="field">
          <label htmlFor="a-type">Resource type</label>
          <input
            id="a-type"
            placeholder="task"
            value={resourceType}
            onChange={(e) => {
              setResourceType(e.target.value);
              reset();
            }}
          />
        </div>
      </form>
      <ErrorAlert error={page.error} onRetry={() => void page.refetch()} />
      {page.data && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="sr-only">Audit events</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Action</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Changes</th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.map((ev) => (
                  <tr key={ev.id}>
                    <td>{formatTime(ev.occurred_at)}</td>
                    <td>
                      <code>{ev.action}</code>
                    </td>
                    <td>
                      {ev.resource.type}
                      {ev.resource.id !== null ? ` #${ev.resource.id}` : ""}
                    </td>
                    <td>
                      {ev.actor.type}
                      {ev.actor.user_id !== null ? ` (user #${ev.actor.user_id})` : ""}
                      {ev.actor.api_key_id !== null ? ` key #${ev.actor.api_key_id}` : ""}
                      {ev.actor.agent_run_id !== null ? ` run #${ev.actor.agent_run_id}` : ""}
                    </td>
                    <td className="clip">{ev.changes ? JSON.stringify(ev.changes) : ""}</td>
                  </tr>
                ))}
                {page.data.items.length === 0 && (
                  <tr>
                    <td colSpan={5}>No events.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <nav className="pager" aria-label="Audit pages">
            <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
              Newer
            </button>
            <span aria-live="polite">Page {cursors.length}</span>
            <button
              type="button"
              disabled={!page.data.next_cursor}
              onClick={() => {
                const next = page.data?.next_cursor;
                if (next) setCursors((c) => [...c, next]);
              }}
            >
              Older
            </button>
          </nav>
        </>
      )}
    </Screen>
  );
}
