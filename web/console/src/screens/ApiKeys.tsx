// API keys: create (the key is shown once, with a copy button), list, revoke.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { components } from "@enterprise-automation/api-client";
import { api, unwrap } from "../api.ts";
import { ErrorAlert, Field, formatTime, Pager, Screen, ShownOnce } from "../ui.tsx";

type Scope = components["schemas"]["Scope"];
type ApiKeyCreated = components["schemas"]["ApiKeyCreated"];
const SCOPES: Scope[] = [
  "tasks:read",
  "tasks:write",
  "agents:read",
  "agents:write",
  "runs:read",
  "runs:write",
  "users:read",
  "users:write",
  "webhooks:read",
  "webhooks:write",
  "audit:read",
];
const PAGE_SIZE = 20;

export function ApiKeys() {
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<ApiKeyCreated | undefined>();
  const list = useQuery({
    queryKey: ["api-keys", page],
    placeholderData: keepPreviousData,
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/api-keys", { params: { query: { skip: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE } } })),
  });
  const revoke = useMutation({
    mutationFn: async (id: number) => unwrap(await api.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["api-keys"] }),
  });
  return (
    <Screen
      title="API keys"
      actions={
        <button
          type="button"
          className="primary"
          onClick={() => {
            setCreated(undefined);
            setCreating(true);
          }}
        >
          New key
        </button>
      }
    >
      {created && <NewKey created={created} onClose={() => setCreated(undefined)} />}
      {creating && (
        <KeyForm
          onCancel={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
            void queryClient.invalidateQueries({ queryKey: ["api-keys"] });
          }}
        />
      )}
      <ErrorAlert error={list.error ?? revoke.error} onRetry={() => void list.refetch()} />
      {list.data && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="sr-only">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((k) => (
                  <tr key={k.id}>
                    <td>{k.name}</td>
                    <td>
                      <code>{k.prefix}</code>
                    </td>
                    <td>{k.scopes.join(", ")}</td>
                    <td>{formatTime(k.last_used_at)}</td>
                    <td>{k.revoked_at ? "revoked" : k.expires_at && new Date(k.expires_at) < new Date() ? "expired" : "active"}</td>
                    <td>
                      {!k.revoked_at && (
                        <button
                          type="button"
                          aria-label={`Revoke ${k.name}`}
                          onClick={() => {
                            if (window.confirm(`Revoke the key “${k.name}”? Programs using it stop working.`)) revoke.mutate(k.id);
                          }}
                        >
                          Revoke
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
                {list.data.items.length === 0 && (
                  <tr>
                    <td colSpan={6}>No keys yet.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <Pager label="Key pages" page={page} totalPages={list.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

function KeyForm({ onCancel, onCreated }: { onCancel: () => void; onCreated: (k: ApiKeyCreated) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["tasks:read"]);
  const [expires, setExpires] = useState("");
  const create = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/api-keys", {
          body: { name, scopes, ...(expires ? { expires_at: `${expires}T00:00:00Z` } : {}) },
        }),
      ),
    onSuccess: onCreated,
  });
  return (
    <form
      className="panel"
      aria-label="New API key"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <h2>New API key</h2>
      <div className="grid">
        <Field label="Name" name="name" error={create.error}>
          {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Expires on (optional)" name="expires_at" error={create.error}>
          {(p) => <input {...p} type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />}
        </Field>
      </div>
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label key={s} className="check">
            <input
              type="checkbox"
              checked={scopes.includes(s)}
              onChange={(e) => setScopes((old) => (e.target.checked ? [...old, s] : old.filter((x) => x !== s)))}
            />
            {s}
          </label>
        ))}
      </fieldset>
      <ErrorAlert error={create.error} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={create.isPending}>
          Create key
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The new key, shown this once; the server keeps only its hash. */
function NewKey({ created, onClose }: { created: ApiKeyCreated; onClose: () => void }) {
  return (
    <ShownOnce
      title={`Key “${created.name}” created`}
      intro="Copy it now: it is shown only this once."
      label="The new API key"
      value={created.key}
      what="key"
      onClose={onClose}
    />
  );
}
