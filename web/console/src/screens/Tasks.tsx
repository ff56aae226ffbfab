// Tasks: filters, sort, pages, create, and edit with If-Match (a 412 shows what changed).
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { etagOf, type Task, type TaskPriority, type TaskStatus, type TaskUpdate } from "@enterprise-automation/api-client";
import { api, ApiProblem, unwrap } from "../api.ts";
import { ErrorAlert, Field, formatTime, optionalInt, Pager, Screen } from "../ui.tsx";

const STATUSES: TaskStatus[] = ["pending", "in_progress", "completed", "failed", "cancelled"];
const PRIORITIES: TaskPriority[] = ["low", "medium", "high", "urgent"];
const SORTS = [
  ["-created_at", "Newest first"],
  ["created_at", "Oldest first"],
  ["-updated_at", "Recently updated"],
  ["-priority", "Priority, highest first"],
  ["priority", "Priority, lowest first"],
  ["due_at", "Due soonest"],
  ["-due_at", "Due latest"],
] as const;
type Sort = (typeof SORTS)[number][0];
const PAGE_SIZE = 20;

interface Filters {
  q: string;
  status: TaskStatus | "";
  priority: TaskPriority | "";
  tag: string;
  sort: Sort;
}

export function Tasks() {
  const [filters, setFilters] = useState<Filters>({ q: "", status: "", priority: "", tag: "", sort: "-created_at" });
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<number | "new" | undefined>();
  const list = useQuery({
    queryKey: ["tasks", filters, page],
    placeholderData: keepPreviousData,
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/tasks", {
          params: {
            query: {
              skip: (page - 1) * PAGE_SIZE,
              limit: PAGE_SIZE,
              sort: filters.sort,
              ...(filters.q.trim() ? { q: filters.q.trim() } : {}),
              ...(filters.status ? { status: [filters.status] } : {}),
              ...(filters.priority ? { priority: filters.priority } : {}),
              ...(filters.tag.trim() ? { tag: filters.tag.trim() } : {}),
            },
          },
        }),
      ),
  });
  const update = (f: Partial<Filters>): void => {
    setFilters((old) => ({ ...old, ...f }));
    setPage(1);
  };
  return (
    <Screen
      title="Tasks"
      actions={
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New task
        </button>
      }
    >
      {editing === "new" && <TaskCreateForm onDone={() => setEditing(undefined)} />}
      {typeof editing === "number" && <TaskEditor key={editing} taskId={editing} onDone={() => setEditing(undefined)} />}
      <form className="filters" role="search" aria-label="Filter tasks" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="f-q">Search</label>
          <input id="f-q" type="search" value={filters.q} onChange={(e) => update({ q: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={filters.status} onChange={(e) => update({ status: e.target.value as TaskStatus | "" })}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-priority">Priority</label>
          <select
            id="f-priority"
            value={filters.priority}
            onChange={(e) => update({ priority: e.target.value as TaskPriority | "" })}
          >
            <option value="">Any</option>
            {PRIORITIES.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-tag">Tag</label>
          <input id="f-tag" value={filters.tag} onChange={(e) => update({ tag: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="f-sort">Sort</label>
          <select id="f-sort" value={filters.sort} onChange={(e) => update({ sort: e.target.value as Sort })}>
            {SORTS.map(([v, l]) => (
              <option key={v} value={v}>
                {l}
              </option>
            ))}
          </select>
        </div>
      </form>
      <ErrorAlert error={list.error} onRetry={() => void list.refetch()} />
      {list.data && (
        <>
          <p className="muted" aria-live="polite">
            {list.data.total_is_estimate ? "About " : ""}
            {list.data.total} task{list.data.total === 1 ? "" : "s"}
          </p>
          <div className="table-wrap">
            <table>
              <caption className="sr-only">Tasks</caption>
              <thead>
                <tr>
                  <th scope="col">Title</th>
                  <th scope="col">Status</th>
                  <th scope="col">Priority</th>
                  <th scope="col">Due</th>
                  <th scope="col">Tags</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((t) => (
                  <tr key={t.id}>
                    <td>
                      {t.title}
                      <span className="muted"> #{t.id}</span>
                    </td>
                    <td>
                      <span className={`badge ${t.status}`}>{t.status.replace("_", " ")}</span>
                    </td>
                    <td>{t.priority}</td>
                    <td>{t.due_at ? t.due_at.slice(0, 10) : "—"}</td>
                    <td>{t.tags.join(", ")}</td>
                    <td>
                      <button type="button" onClick={() => setEditing(t.id)} aria-label={`Edit ${t.title}`}>
                        Edit
                      </button>
                    </td>
                  </tr>
                ))}
                {list.data.items.length === 0 && (
                  <tr>
                    <td colSpan={6}>No tasks match.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
          <Pager label="Task pages" page={page} totalPages={list.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

/** The editable fields, as the form holds them. */
interface Draft {
  title: string;
  description: string;
  status: TaskStatus;
  priority: TaskPriority;
  assignee_id: string;
  due: string; // yyyy-mm-dd or ""
  tags: string; // comma separated
}

const FIELD_LABELS: Record<keyof Draft, string> = {
  title: "Title",
  description: "Description",
  status: "Status",
  priority: "Priority",
  assignee_id: "Assignee",
  due: "Due date",
  tags: "Tags",
};

function draftOf(t: Task): Draft {
  return {
    title: t.title,
    description: t.description,
    status: t.status,
    priority: t.priority,
    assignee_id: t.assignee_id === null ? "" : String(t.assignee_id),
    due: t.due_at ? t.due_at.slice(0, 10) : "",
    tags: t.tags.join(", "),
  };
}

function tagsOf(s: string): string[] {
  return s
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/** The PATCH body for the fields of `draft` that differ from `base`. */
function patchOf(base: Draft, draft: Draft): TaskUpdate {
  const p: TaskUpdate = {};
  if (draft.title !== base.title) p.title = draft.title;
  if (draft.description !== base.description) p.description = draft.description;
  if (draft.status !== base.status) p.status = draft.status;
  if (draft.priority !== base.priority) p.priority = draft.priority;
  if (draft.assignee_id !== base.assignee_id) p.assignee_id = optionalInt(draft.assignee_id) ?? null;
  if (draft.due !== base.due) p.due_at = draft.due ? `${draft.due}T00:00:00Z` : null;
  if (draft.tags !== base.tags) p.tags = tagsOf(draft.tags);
  return p;
}

function changedFields(a: Draft, b: Draft): (keyof Draft)[] {
  return (Object.keys(FIELD_LABELS) as (keyof Draft)[]).filter((k) => a[k] !== b[k]);
}

function TaskCreateForm({ onDone }: { onDone: () => void }) {
  const queryClient = useQueryClient();
  const [d, setD] = useState<Draft>({
    title: "",
    description: "",
    status: "pending",
    priority: "medium",
    assignee_id: "",
    due: "",
    tags: "",
  });
  const create = useMutation({
    mutationFn: async () => {
      const assignee = optionalInt(d.assignee_id);
      return unwrap(
        await api.POST("/api/v1/tasks", {
          body: {
            title: d.title,
            description: d.description,
            priority: d.priority,
            tags: tagsOf(d.tags),
            ...(assignee !== undefined ? { assignee_id: assignee } : {}),
            ...(d.due ? { due_at: `${d.due}T00:00:00Z` } : {}),
          },
        }),
      );
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ["tasks"] });
      onDone();
    },
  });
  return (
    <form
      className="panel"
      aria-label="New task"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <h2>New task</h2>
      <DraftFields draft={d} onChange={setD} error={create.error} withStatus={false} />
      <FormError error={create.error} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={create.isPending}>
          Create task
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** A problem not already shown next to a field. */
function FormError({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiProblem && error.status === 422 && error.errors.length > 0) {
    return (
      <p className="alert error" role="alert">
        Please correct the fields marked above.
      </p>
    );
  }
  return <ErrorAlert error={error} />;
}

function DraftFields({
  draft: d,
  onChange,
  error,
  withStatus,
}: {
  draft: Draft;
  onChange: (d: Draft) => void;
  error: unknown;
  withStatus: boolean;
}) {
  const set = (patch: Partial<Draft>): void => onChange({ ...d, ...patch });
  return (
    <div className="grid">
      <Field label="Title" name="title" error={error}>
        {(p) => <input {...p} required maxLength={200} value={d.title} onChange={(e) => set({ title: e.target.value })} />}
      </Field>
      <Field label="Description" name="description" error={error}>
        {(p) => <textarea {...p} rows={3} value={d.description} onChange={(e) => set({ description: e.target.value })} />}
      </Field>
      {withStatus && (
        <Field label="Status" name="status" error={error}>
          {(p) => (
            <select {...p} value={d.status} onChange={(e) => set({ status: e.target.value as TaskStatus })}>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s.replace("_", " ")}
                </option>
              ))}
            </select>
          )}
        </Field>
      )}
      <Field label="Priority" name="priority" error={error}>
        {(p) => (
          <select {...p} value={d.priority} onChange={(e) => set({ priority: e.target.value as TaskPriority })}>
            {PRIORITIES.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Assignee (user id)" name="assignee_id" error={error}>
        {(p) => (
          <input {...p} inputMode="numeric" pattern="[0-9]*" value={d.assignee_id} onChange={(e) => set({ assignee_id: e.target.value })} />
        )}
      </Field>
      <Field label="Due date" name="due_at" error={error}>
        {(p) => <input {...p} type="date" value={d.due} onChange={(e) => set({ due: e.target.value })} />}
      </Field>
      <Field label="Tags" name="tags" error={error} hint="Comma separated">
        {(p) => <input {...p} value={d.tags} onChange={(e) => set({ tags: e.target.value })} />}
      </Field>
    </div>
  );
}

interface Loaded {
  task: Task;
  etag: string | undefined;
}

async function loadTask(id: number): Promise<Loaded> {
  const res = await api.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: id } } });
  return { task: unwrap(res), etag: etagOf(res) };
}

function TaskEditor({ taskId, onDone }: { taskId: number; onDone: () => void }) {
  const loaded = useQuery({ queryKey: ["task", taskId], queryFn: () => loadTask(taskId), staleTime: Infinity, gcTime: 0 });
  if (loaded.error) return <ErrorAlert error={loaded.error} onRetry={() => void loaded.refetch()} />;
  if (!loaded.data) return <p role="status">Loading task…</p>;
  return <TaskEditForm initial={loaded.data} onDone={onDone} />;
}

/**
 * Edits with If-Match. When someone else saved first (412), it shows their changes next
 * to yours and lets you save yours over the current version, or take theirs.
 */
function TaskEditForm({ initial, onDone }: { initial: Loaded; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [base, setBase] = useState<Loaded>(initial);
  const [draft, setDraft] = useState<Draft>(() => draftOf(initial.task));
  const [conflict, setConflict] = useState<{ before: Task; latest: Loaded } | undefined>();
  const baseDraft = draftOf(base.task);
  const save = useMutation({
    mutationFn: async ({ from, body }: { from: Loaded; body: TaskUpdate }) =>
      unwrap(
        await api.PATCH("/api/v1/tasks/{task_id}", {
          params: { path: { task_id: from.task.id }, header: from.etag ? { "If-Match": from.etag } : {} },
          body,
        }),
      ),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ["tasks"] });
      onDone();
    },
    onError: async (err) => {
      if (err instanceof ApiProblem && err.status === 412) {
        const latest = await loadTask(base.task.id);
        setConflict({ before: base.task, latest });
      }
    },
  });
  const theirs = conflict ? changedFields(draftOf(conflict.before), draftOf(conflict.latest.task)) : [];
  const mine = changedFields(baseDraft, draft);
  return (
    <form
      className="panel"
      aria-label={`Edit task ${base.task.id}`}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate({ from: base, body: patchOf(baseDraft, draft) });
      }}
    >
      <h2>
        Edit task #{base.task.id} <span className="muted">version {base.task.version}</span>
      </h2>
      <DraftFields draft={draft} onChange={setDraft} error={save.error} withStatus />
      {conflict ? (
        <div className="alert conflict" role="alert" aria-labelledby="conflict-title">
          <h3 id="conflict-title">Someone else changed this task while you were editing</h3>
          <p>
            It is now at version {conflict.latest.task.version} (updated {formatTime(conflict.latest.task.updated_at)}).
            Their changes:
          </p>
          <dl className="changes">
            {theirs.length === 0 && <dd>No visible field changed.</dd>}
            {theirs.map((k) => (
              <div key={k}>
                <dt>{FIELD_LABELS[k]}</dt>
                <dd>
                  <del>{draftOf(conflict.before)[k] || "—"}</del> → <ins>{draftOf(conflict.latest.task)[k] || "—"}</ins>
                  {mine.includes(k) && <strong> (you changed it too: yours is “{draft[k] || "—"}”)</strong>}
                </dd>
              </div>
            ))}
          </dl>
          <div className="buttons">
            <button
              type="button"
              className="primary"
              onClick={() => {
                // Only the fields you changed are sent, over the current version.
                const latest = conflict.latest;
                const mineNow = patchOf(draftOf(base.task), draft);
                const merged = { ...draftOf(latest.task) };
                for (const k of changedFields(draftOf(base.task), draft)) (merged as Record<string, string>)[k] = draft[k];
                setBase(latest);
                setDraft(merged);
                setConflict(undefined);
                save.reset();
                if (Object.keys(mineNow).length > 0) save.mutate({ from: latest, body: mineNow });
              }}
            >
              Save my changes again
            </button>
            <button
              type="button"
              onClick={() => {
                setBase(conflict.latest);
                setDraft(draftOf(conflict.latest.task));
                setConflict(undefined);
                save.reset();
              }}
            >
              Discard mine, take theirs
            </button>
          </div>
        </div>
      ) : (
        !(save.error instanceof ApiProblem && save.error.status === 412) && <FormError error={save.error} />
      )}
      <div className="buttons">
        <button type="submit" className="primary" disabled={save.isPending || mine.length === 0 || conflict !== undefined}>
          Save
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
