// Webhooks (administrators): endpoints (create with the secret shown once, edit with
// If-Match, delete, rotate the secret, send a test) and each endpoint's delivery log with
// redeliver.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { etagOf, type components } from "@enterprise-automation/api-client";
import { api, ApiProblem, unwrap } from "../api.ts";
import { ErrorAlert, Field, formatTime, Link, Pager, Screen, ShownOnce } from "../ui.tsx";

type Webhook = components["schemas"]["Webhook"];
type Subscription = components["schemas"]["WebhookSubscription"];
type DeliveryStatus = components["schemas"]["WebhookDeliveryStatus"];
const EVENTS: Subscription[] = [
  "*",
  "task.created",
  "task.updated",
  "task.deleted",
  "agent_run.completed",
  "agent_run.failed",
  "agent_run.cancelled",
  "agent_run.incomplete",
  "agent_run.requires_action",
  "agent_run.expired",
  "user.created",
  "user.deleted",
  "webhook.test",
];
const DELIVERY_STATUSES: DeliveryStatus[] = ["pending", "succeeded", "retrying", "failed"];
const PAGE_SIZE = 20;

/** A signing secret shown this once (on creation or rotation). */
function SecretOnce({ title, secret, onClose }: { title: string; secret: string; onClose: () => void }) {
  return (
    <ShownOnce
      title={title}
      intro="Copy the signing secret now: it is shown only this once. Receivers verify each delivery's signature with it."
      label="The signing secret"
      value={secret}
      what="secret"
      onClose={onClose}
    />
  );
}

/** The event types as checkboxes; `*` (every event) stands alone. */
function EventChoice({ events, onChange }: { events: Subscription[]; onChange: (e: Subscription[]) => void }) {
  const all = events.includes("*");
  return (
    <fieldset>
      <legend>Events</legend>
      {EVENTS.map((ev) => (
        <label key={ev} className="check">
          <input
            type="checkbox"
            checked={events.includes(ev)}
            disabled={all && ev !== "*"}
            onChange={(e) => {
              if (ev === "*") onChange(e.target.checked ? ["*"] : []);
              else onChange(e.target.checked ? [...events, ev] : events.filter((x) => x !== ev));
            }}
          />
          {ev === "*" ? "* (every event)" : ev}
        </label>
      ))}
    </fieldset>
  );
}

export function Webhooks() {
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<Webhook | "new" | undefined>();
  const [secret, setSecret] = useState<{ title: string; secret: string } | undefined>();
  const list = useQuery({
    queryKey: ["webhooks", page],
    placeholderData: keepPreviousData,
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/webhooks", { params: { query: { skip: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE } } })),
  });
  const remove = useMutation({
    mutationFn: async (id: number) => unwrap(await api.DELETE("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["webhooks"] }),
  });
  const onSaved: Saved = (created) => {
    setEditing(undefined);
    if (created) setSecret({ title: `Endpoint ${created.url} subscribed`, secret: created.secret });
    void queryClient.invalidateQueries({ queryKey: ["webhooks"] });
    void queryClient.invalidateQueries({ queryKey: ["webhook"] });
  };
  return (
    <Screen
      title="Webhooks"
      actions={
        <button
          type="button"
          className="primary"
          onClick={() => {
            setSecret(undefined);
            setEditing("new");
          }}
        >
          New endpoint
        </button>
      }
    >
      {secret && <SecretOnce {...secret} onClose={() => setSecret(undefined)} />}
      {editing === "new" && <WebhookForm key="new" onCancel={() => setEditing(undefined)} onSaved={onSaved} />}
      {editing && editing !== "new" && (
        <WebhookEdit key={editing.id} id={editing.id} onCancel={() => setEditing(undefined)} onSaved={onSaved} />
      )}
      <ErrorAlert error={list.error ?? remove.error} onRetry={() => void list.refetch()} />
      {list.data && (
        <>
          <ul className="cards">
            {list.data.items.map((w) => (
              <li key={w.id} className="card">
                <h2 className="url">{w.url}</h2>
                <p>{w.description || <span className="muted">No description</span>}</p>
                <p className="muted">
                  <span className={`badge ${w.is_active ? "completed" : "cancelled"}`}>{w.is_active ? "active" : "inactive"}</span>{" "}
                  {w.disabled_reason && `(${w.disabled_reason}) `}· events: {w.events.join(", ")}
                </p>
                <div className="buttons">
                  <Link to={`/webhooks/${w.id}`}>
                    Delivery log<span className="sr-only"> of {w.url}</span>
                  </Link>
                  <button type="button" aria-label={`Edit ${w.url}`} onClick={() => setEditing(w)}>
                    Edit
                  </button>
                  <button
                    type="button"
                    aria-label={`Delete ${w.url}`}
                    onClick={() => {
                      if (window.confirm(`Delete the endpoint ${w.url} and its delivery log?`)) remove.mutate(w.id);
                    }}
                  >
                    Delete
                  </button>
                </div>
              </li>
            ))}
            {list.data.items.length === 0 && <li>No endpoints yet.</li>}
          </ul>
          <Pager label="Endpoint pages" page={page} totalPages={list.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

type Saved = (created?: components["schemas"]["WebhookCreated"]) => void;

/**
 * Edits an endpoint from a fresh read (its values and ETag), saved with If-Match. When
 * someone else saved first (412), the endpoint is read again and the form shows it.
 */
function WebhookEdit({ id, onCancel, onSaved }: { id: number; onCancel: () => void; onSaved: Saved }) {
  const [conflict, setConflict] = useState(false);
  const current = useQuery({
    queryKey: ["webhook", id, "edit"],
    gcTime: 0,
    queryFn: async () => {
      const res = await api.GET("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: id } } });
      return { webhook: unwrap(res), etag: etagOf(res) };
    },
  });
  if (!current.data) {
    return (
      <div className="panel">
        <ErrorAlert error={current.error} onRetry={() => void current.refetch()} />
        {!current.error && <p role="status">Loading endpoint #{id}…</p>}
      </div>
    );
  }
  return (
    <WebhookForm
      key={current.data.etag ?? ""}
      webhook={current.data.webhook}
      etag={current.data.etag}
      conflict={conflict}
      onCancel={onCancel}
      onSaved={onSaved}
      onConflict={() => {
        setConflict(true);
        void current.refetch();
      }}
    />
  );
}

/** Creates an endpoint, or edits one with If-Match `etag`. */
function WebhookForm({
  webhook,
  etag,
  conflict = false,
  onCancel,
  onSaved,
  onConflict,
}: {
  webhook?: Webhook;
  etag?: string | undefined;
  conflict?: boolean;
  onCancel: () => void;
  onSaved: Saved;
  onConflict?: () => void;
}) {
  const [url, setUrl] = useState(webhook?.url ?? "");
  const [description, setDescription] = useState(webhook?.description ?? "");
  const [events, setEvents] = useState<Subscription[]>(webhook?.events ?? ["*"]);
  const [active, setActive] = useState(webhook?.is_active ?? true);
  const save = useMutation({
    mutationFn: async () => {
      const body = { url, description, events, is_active: active };
      if (!webhook) {
        onSaved(unwrap(await api.POST("/api/v1/webhooks", { body })));
        return;
      }
      unwrap(
        await api.PATCH("/api/v1/webhooks/{webhook_id}", {
          params: { path: { webhook_id: webhook.id }, header: etag ? { "If-Match": etag } : {} },
          body,
        }),
      );
      onSaved();
    },
    onError: (err) => {
      if (err instanceof ApiProblem && err.status === 412) onConflict?.();
    },
  });
  return (
    <form
      className="panel"
      aria-label={webhook ? `Edit endpoint ${webhook.id}` : "New endpoint"}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h2>{webhook ? `Edit endpoint #${webhook.id}` : "New endpoint"}</h2>
      <div className="grid">
        <Field label="URL" name="url" error={save.error} hint="http or https, no credentials">
          {(p) => <input {...p} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} />}
        </Field>
        <Field label="Description" name="description" error={save.error}>
          {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
        </Field>
      </div>
      <EventChoice events={events} onChange={setEvents} />
      <label className="check">
        <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} />
        Active
      </label>
      {conflict && (
        <div className="alert conflict" role="alert">
          Someone else changed this endpoint meanwhile: the form now shows their version. Make your change again and save.
        </div>
      )}
      {!(save.error instanceof ApiProblem && save.error.status === 412) && <ErrorAlert error={save.error} />}
      <div className="buttons">
        <button type="submit" className="primary" disabled={save.isPending}>
          {webhook ? "Save endpoint" : "Create endpoint"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** One endpoint: send a test, rotate the secret, and its delivery log with redeliver. */
export function WebhookDetail({ webhookId }: { webhookId: number }) {
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [status, setStatus] = useState<DeliveryStatus | "">("");
  const [secret, setSecret] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const path = { webhook_id: webhookId };
  const hook = useQuery({
    queryKey: ["webhook", webhookId],
    queryFn: async () => unwrap(await api.GET("/api/v1/webhooks/{webhook_id}", { params: { path } })),
  });
  const deliveries = useQuery({
    queryKey: ["deliveries", webhookId, page, status],
    placeholderData: keepPreviousData,
    // While something is on its way, the log follows it.
    refetchInterval: (q) => (q.state.data?.items.some((d) => d.status === "pending" || d.status === "retrying") ? 1_000 : 10_000),
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/webhooks/{webhook_id}/deliveries", {
          params: { path, query: { skip: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE, ...(status ? { status } : {}) } },
        }),
      ),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["deliveries", webhookId] });
  const test = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/webhooks/{webhook_id}/test", { params: { path } })),
    onSuccess: (d) => {
      setNotice(`Test event queued as delivery #${d.id}.`);
      void refresh();
    },
  });
  const rotate = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/webhooks/{webhook_id}/rotate-secret", { params: { path } })),
    onSuccess: (s) => setSecret(s.secret),
  });
  const redeliver = useMutation({
    mutationFn: async (id: number) =>
      unwrap(
        await api.POST("/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", {
          params: { path: { webhook_id: webhookId, delivery_id: id } },
        }),
      ),
    onSuccess: (d) => {
      setNotice(`Delivery #${d.id} queued again.`);
      void refresh();
    },
    onError: () => void refresh(),
  });
  const busy = redeliver.error instanceof ApiProblem && redeliver.error.status === 409;
  return (
    <Screen
      title={hook.data ? `Webhook #${webhookId}` : "Webhook"}
      actions={
        <div className="buttons">
          <button type="button" className="primary" disabled={test.isPending} onClick={() => test.mutate()}>
            Send test event
          </button>
          <button
            type="button"
            disabled={rotate.isPending}
            onClick={() => {
              if (window.confirm("Issue a new signing secret? The old one keeps signing for 24 hours.")) rotate.mutate();
            }}
          >
            Rotate secret
          </button>
        </div>
      }
    >
      <p>
        <Link to="/webhooks">All endpoints</Link>
      </p>
      {secret && <SecretOnce title="New signing secret" secret={secret} onClose={() => setSecret(undefined)} />}
      <ErrorAlert error={hook.error ?? test.error ?? rotate.error} onRetry={() => void hook.refetch()} />
      {hook.data && (
        <dl className="facts">
          <div>
            <dt>URL</dt>
            <dd>{hook.data.url}</dd>
          </div>
          <div>
            <dt>State</dt>
            <dd>{hook.data.is_active ? "active" : `inactive${hook.data.disabled_reason ? ` (${hook.data.disabled_reason})` : ""}`}</dd>
          </div>
          <div>
            <dt>Events</dt>
            <dd>{hook.data.events.join(", ")}</dd>
          </div>
          <div>
            <dt>Description</dt>
            <dd>{hook.data.description || "—"}</dd>
          </div>
        </dl>
      )}
      <h2>Delivery log</h2>
      <p role="status" className="muted">
        {notice}
      </p>
      {busy ? (
        <div className="alert conflict" role="alert">
          That delivery is still pending or retrying: it can be redelivered once it has succeeded or failed.
        </div>
      ) : (
        <ErrorAlert error={redeliver.error} />
      )}
      <div className="filters">
        <div className="field">
          <label htmlFor="d-status">Status</label>
          <select
            id="d-status"
            value={status}
            onChange={(e) => {
              setStatus(e.target.value as DeliveryStatus | "");
              setPage(1);
            }}
          >
            <option value="">Any</option>
            {DELIVERY_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </div>
      </div>
      <ErrorAlert error={deliveries.error} onRetry={() => void deliveries.refetch()} />
      {deliveries.data && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="sr-only">Deliveries</caption>
              <thead>
                <tr>
                  <th scope="col">Delivery</th>
                  <th scope="col">Event</th>
                  <th scope="col">Status</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last code</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Next attempt</th>
                  <th scope="col">Delivered</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {deliveries.data.items.map((d) => (
                  <tr key={d.id}>
                    <td>#{d.id}</td>
                    <td>{d.event_type}</td>
                    <td>
                      <span className={`badge ${d.status === "succeeded" ? "completed" : d.status === "failed" ? "failed" : "queued"}`}>
                        {d.status}
                      </span>
                    </td>
                    <td>{d.attempts}</td>
                    <td>{d.last_status_code ?? "—"}</td>
                    <td className="clip" title={d.last_error ?? ""}>
                      {d.last_error ?? "—"}
                    </td>
                    <td>{formatTime(d.next_attempt_at)}</td>
                    <td>{formatTime(d.delivered_at)}</td>
                    <td>
                      <button
                        type="button"
                        aria-label={`Redeliver #${d.id}`}
                        disabled={redeliver.isPending}
                        onClick={() => redeliver.mutate(d.id)}
                      >
                        Redeliver
                      </button>
                    </td>
                  </tr>
                ))}
                {deliveries.data.items.length === 0 && (
                  <tr>
                    <td colSpan={9}>No deliveries yet.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <Pager label="Delivery pages" page={page} totalPages={deliveries.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

/** What a user who is not an administrator sees on the webhooks' paths. */
export function AdminsOnly() {
  return (
    <Screen title="Webhooks">
      <p>Only administrators manage webhooks.</p>
    </Screen>
  );
}
