// A plain Node program on the installed package: session and API-key auth, a typed
// problem, and an agent run's event stream. Prints one line: "ok <json>".
import {
  createApiClient,
  createApiSession,
  isApiProblem,
  streamRunEvents,
  TERMINAL_RUN_EVENTS,
  unwrap,
  type RunEvent,
  type Task,
} from "@enterprise-automation/api-client";

const baseUrl = required("API_URL");
const session = createApiSession({ baseUrl });
await session.login(required("ADMIN_EMAIL"), required("ADMIN_PASSWORD"));
const me = unwrap(await session.client.GET("/api/v1/users/me"));

const task: Task = unwrap(
  await session.client.POST("/api/v1/tasks", { body: { title: "Packed in Node", tags: ["package-node"] } }),
);
// @ts-expect-error the package's types are real: "titel" is not a field of TaskCreate
const typo = await session.client.POST("/api/v1/tasks", { body: { titel: "misspelled" } });

let missing = 0;
try {
  unwrap(await session.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: 999_999 } } }));
} catch (err) {
  if (!isApiProblem(err, 404)) throw err;
  missing = err.status;
}

const key = unwrap(await session.client.POST("/api/v1/api-keys", { body: { name: "node consumer", scopes: ["tasks:read"] } }));
const machine = createApiClient({ baseUrl, apiKey: key.key });
const listed = unwrap(await machine.GET("/api/v1/tasks", { params: { query: { tag: "package-node" } } }));

const agent = unwrap(await session.client.POST("/api/v1/agents", { body: { name: "Packed agent" } }));
const run = unwrap(
  await session.client.POST("/api/v1/agents/{agent_id}/runs", {
    params: { path: { agent_id: agent.id } },
    body: { input: "Say hello." },
  }),
);
const events: RunEvent[] = [];
const signal = AbortSignal.timeout(30_000);
for await (const ev of streamRunEvents(run.id, { baseUrl, token: () => session.tokens?.access_token, signal })) {
  events.push(ev);
}
const last = events.at(-1);
if (!last || !TERMINAL_RUN_EVENTS.has(last.event)) throw new Error(`the stream ended without a terminal event: ${JSON.stringify(events)}`);

console.log(
  "ok " +
    JSON.stringify({
      me: me.email,
      task: task.title,
      typo: typo.response.status,
      missing,
      listed: listed.items.map((t) => t.id),
      created: task.id,
      events: events.map((e) => e.event),
    }),
);

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
