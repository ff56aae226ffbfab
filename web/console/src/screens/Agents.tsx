// Agents: list, create, edit, and start a run.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { components } from "@enterprise-automation/api-client";
import { api, unwrap } from "../api.ts";
import { navigate } from "../router.ts";
import { ErrorAlert, Field, optionalInt, Pager, Screen } from "../ui.tsx";

type Agent = components["schemas"]["Agent"];
type AgentTool = components["schemas"]["AgentTool"];
type ToolScope = components["schemas"]["AgentToolScope"];
const TOOLS: AgentTool[] = ["get_task", "search_tasks", "create_task", "update_task_status"];
const PAGE_SIZE = 20;

export function Agents() {
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<Agent | "new" | undefined>();
  const [running, setRunning] = useState<Agent | undefined>();
  const list = useQuery({
    queryKey: ["agents", page],
    placeholderData: keepPreviousData,
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/agents", { params: { query: { skip: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE } } })),
  });
  return (
    <Screen
      title="Agents"
      actions={
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          New agent
        </button>
      }
    >
      {editing && <AgentForm key={editing === "new" ? "new" : editing.id} agent={editing === "new" ? undefined : editing} onDone={() => setEditing(undefined)} />}
      {running && <StartRun key={running.id} agent={running} onDone={() => setRunning(undefined)} />}
      <ErrorAlert error={list.error} onRetry={() => void list.refetch()} />
      {list.data && (
        <>
          <ul className="cards">
            {list.data.items.map((a) => (
              <li key={a.id} className="card">
                <h2>
                  {a.name} {!a.is_active && <span className="badge cancelled">inactive</span>}
                </h2>
                <p>{a.description || <span className="muted">No description</span>}</p>
                <p className="muted">
                  {a.model} · tools: {a.tools.length ? a.tools.join(", ") : "none"} · scope: {a.tool_scope}
                  {a.approval_required_tools.length > 0 && ` · approval: ${a.approval_required_tools.join(", ")}`}
                </p>
                <div className="buttons">
                  <button type="button" onClick={() => setRunning(a)} disabled={!a.is_active} aria-label={`Run ${a.name}`}>
                    Run
                  </button>
                  <button type="button" onClick={() => setEditing(a)} aria-label={`Edit ${a.name}`}>
                    Edit
                  </button>
                </div>
              </li>
            ))}
            {list.data.items.length === 0 && <li>No agents yet.</li>}
          </ul>
          <Pager label="Agent pages" page={page} totalPages={list.data.total_pages} onPage={setPage} />
        </>
      )}
    </Screen>
  );
}

function AgentForm({ agent, onDone }: { agent: Agent | undefined; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState(agent?.name ?? "");
  const [description, setDescription] = useState(agent?.description ?? "");
  const [instructions, setInstructions] = useState(agent?.instructions ?? "");
  const [model, setModel] = useState(agent?.model ?? "");
  const [temperature, setTemperature] = useState(String(agent?.temperature ?? 0));
  const [tools, setTools] = useState<AgentTool[]>(agent?.tools ?? []);
  const [approval, setApproval] = useState<AgentTool[]>(agent?.approval_required_tools ?? []);
  const [scope, setScope] = useState<ToolScope>(agent?.tool_scope ?? "task");
  const [active, setActive] = useState(agent?.is_active ?? true);
  const save = useMutation({
    mutationFn: async () => {
      const body = {
        name,
        description,
        instructions,
        temperature: Number(temperature),
        tools,
        approval_required_tools: approval.filter((t) => tools.includes(t)),
        tool_scope: scope,
        is_active: active,
        ...(model.trim() ? { model: model.trim() } : {}),
      };
      if (agent) {
        return unwrap(await api.PATCH("/api/v1/agents/{agent_id}", { params: { path: { agent_id: agent.id } }, body }));
      }
      return unwrap(await api.POST("/api/v1/agents", { body }));
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ["agents"] });
      onDone();
    },
  });
  return (
    <form
      className="panel"
      aria-label={agent ? `Edit agent ${agent.name}` : "New agent"}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h2>{agent ? `Edit ${agent.name}` : "New agent"}</h2>
      <div className="grid">
        <Field label="Name" name="name" error={save.error}>
          {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Description" name="description" error={save.error}>
          {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
        </Field>
        <Field label="Instructions" name="instructions" error={save.error}>
          {(p) => <textarea {...p} rows={4} value={instructions} onChange={(e) => setInstructions(e.target.value)} />}
        </Field>
        <Field label="Model" name="model" error={save.error} hint="Empty: the server's default model">
          {(p) => <input {...p} value={model} onChange={(e) => setModel(e.target.value)} />}
        </Field>
        <Field label="Temperature" name="temperature" error={save.error}>
          {(p) => (
            <input {...p} type="number" min={0} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(e.target.value)} />
          )}
        </Field>
        <Field label="Tool scope" name="tool_scope" error={save.error}>
          {(p) => (
            <select {...p} value={scope} onChange={(e) => setScope(e.target.value as ToolScope)}>
              <option value="task">task: only the run's task</option>
              <option value="creator">creator: the creator's tasks</option>
            </select>
          )}
        </Field>
      </div>
      <fieldset>
        <legend>Tools</legend>
        {TOOLS.map((t) => (
          <label key={t} className="check">
            <input
              type="checkbox"
              checked={tools.includes(t)}
              onChange={(e) => setTools((old) => (e.target.checked ? [...old, t] : old.filter((x) => x !== t)))}
            />
            {t}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>Calls that wait for a person&apos;s approval</legend>
        {TOOLS.map((t) => (
          <label key={t} className="check">
            <input
              type="checkbox"
              disabled={!tools.includes(t)}
              checked={tools.includes(t) && approval.includes(t)}
              onChange={(e) => setApproval((old) => (e.target.checked ? [...old, t] : old.filter((x) => x !== t)))}
              aria-label={`Approve ${t} calls`}
            />
            {t}
          </label>
        ))}
      </fieldset>
      <label className="check">
        <input type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} />
        Active
      </label>
      <ErrorAlert error={save.error} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={save.isPending}>
          {agent ? "Save agent" : "Create agent"}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function StartRun({ agent, onDone }: { agent: Agent; onDone: () => void }) {
  const [input, setInput] = useState("");
  const [taskId, setTaskId] = useState("");
  const start = useMutation({
    mutationFn: async () => {
      const task = optionalInt(taskId);
      return unwrap(
        await api.POST("/api/v1/agents/{agent_id}/runs", {
          params: { path: { agent_id: agent.id } },
          body: { input, ...(task !== undefined ? { task_id: task } : {}) },
        }),
      );
    },
    onSuccess: (run) => navigate(`/runs/${run.id}`),
  });
  return (
    <form
      className="panel"
      aria-label={`Run ${agent.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        start.mutate();
      }}
    >
      <h2>Run {agent.name}</h2>
      <div className="grid">
        <Field label="Input" name="input" error={start.error}>
          {(p) => <textarea {...p} required rows={3} value={input} onChange={(e) => setInput(e.target.value)} />}
        </Field>
        <Field label="Task id (optional)" name="task_id" error={start.error}>
          {(p) => <input {...p} inputMode="numeric" value={taskId} onChange={(e) => setTaskId(e.target.value)} />}
        </Field>
      </div>
      <ErrorAlert error={start.error} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={start.isPending}>
          Start run
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
