// A browser app on the installed package: logs in, creates and reads a task, and shows a
// typed problem. Writes "ok <json>" (or "error: …") into #result.
import { createApiSession, etagOf, isApiProblem, unwrap, type Task } from "@enterprise-automation/api-client";

const out = document.getElementById("result")!;

async function main(): Promise<string> {
  const params = new URLSearchParams(location.search);
  const session = createApiSession({ baseUrl: location.origin });
  await session.login(params.get("email") ?? "", params.get("password") ?? "");
  const created: Task = unwrap(
    await session.client.POST("/api/v1/tasks", { body: { title: "Packed in Vite", priority: "high", tags: ["package-vite"] } }),
  );
  const read = await session.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: created.id } } });
  // @ts-expect-error the package's types are real: "priorty" is not a field of TaskUpdate
  await session.client.PATCH("/api/v1/tasks/{task_id}", { params: { path: { task_id: created.id } }, body: { priorty: "low" } });
  let status = 0;
  try {
    unwrap(
      await session.client.PATCH("/api/v1/tasks/{task_id}", {
        params: { path: { task_id: created.id }, header: { "If-Match": '"999"' } },
        body: { status: "in_progress" },
      }),
    );
  } catch (err) {
    if (!isApiProblem(err, 412)) throw err;
    status = err.status;
  }
  return "ok " + JSON.stringify({ title: unwrap(read).title, etag: etagOf(read), precondition: status });
}

main().then(
  (text) => (out.textContent = text),
  (err: unknown) => (out.textContent = `error: ${err instanceof Error ? err.message : String(err)}`),
);
