// Unit tests of the Server-Sent Events helper over fake responses (no server).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiProblem, parseEventStream, streamRunEvents, type RunEvent, type ServerSentEvent } from "../src/index.ts";

const enc = new TextEncoder();

/** A body that delivers the given chunks, then ends, or errors like a dropped connection. */
function body(chunks: (string | Uint8Array)[], end: "close" | "drop" = "close"): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const c = chunks[i++];
      if (c !== undefined) {
        controller.enqueue(typeof c === "string" ? enc.encode(c) : c);
      } else if (end === "drop") {
        controller.error(new TypeError("terminated: other side closed"));
      } else {
        controller.close();
      }
    },
  });
}

function sse(chunks: (string | Uint8Array)[], end: "close" | "drop" = "close"): Response {
  return new Response(body(chunks, end), {
    status: 200,
    headers: { "Content-Type": "text/event-stream; charset=utf-8" },
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe("parseEventStream", () => {
  it("parses fields, comments, multi-line data and every line ending, across chunk boundaries", async () => {
    const stream =
      "\uFEFF: a comment, then a keep-alive\n" +
      ":\n" +
      "id: 1\nevent: run.status\ndata: {\"a\":1}\n\n" +
      "id:2\r\nevent:run.output.delta\r\ndata: line one\r\ndata:  two spaces\r\ndata\r\n\r\n" +
      "data: no type, keeps id 2\r\r" +
      "id: 3\nunknown: field\ndata\n\n" +
      "id\nevent: x\n\n" + // an empty id resets it; no data: nothing dispatched
      "data: after reset\n\n" +
      "id: 9\ndata: cut off by the end of the stream";
    // Split into 1..7-byte chunks, including inside the CRLFs and a multi-byte character.
    const bytes = enc.encode(stream.replace("line one", "line öne"));
    const chunks: Uint8Array[] = [];
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 7) + 1) chunks.push(bytes.slice(i, i + n));
    const retries: number[] = [];
    const events = await collect(parseEventStream(body(chunks), { onRetry: (ms) => retries.push(ms) }));
    assert.deepEqual(events, [
      { id: "1", event: "run.status", data: '{"a":1}' },
      { id: "2", event: "run.output.delta", data: "line öne\n two spaces\n" },
      { id: "2", event: "message", data: "no type, keeps id 2" },
      { id: "3", event: "message", data: "" },
      { id: "", event: "message", data: "after reset" },
    ] satisfies ServerSentEvent[]);
    assert.deepEqual(retries, []);
  });

  it("reports retry fields and starts from the given last event id", async () => {
    const retries: number[] = [];
    const events = await collect(
      parseEventStream(body(["retry: 2500\nretry: soon\n\ndata: x\n\n"]), {
        lastEventId: "41",
        onRetry: (ms) => retries.push(ms),
      }),
    );
    assert.deepEqual(events, [{ id: "41", event: "message", data: "x" }]);
    assert.deepEqual(retries, [2500]);
  });

  it("cancels the body when the consumer stops early", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("data: 1\n\ndata: 2\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const ev of parseEventStream(stream)) {
      assert.equal(ev.data, "1");
      break;
    }
    assert.ok(cancelled);
  });
});

describe("streamRunEvents", () => {
  it("sends the token, parses typed events, resumes with Last-Event-ID after a drop and stops at the terminal event", async () => {
    const calls: { url: string; headers: Headers }[] = [];
    const responses = [
      // The connection drops in the middle of event 3: it must not be delivered twice.
      sse(
        [
          ": hello\n\n",
          'id: 1\nevent: run.status\ndata: {"type":"run.status","run_id":7,"status":"in_progress","attempt":1}\n\n',
          'id: 2\nevent: run.output.delta\ndata: {"type":"run.output.delta",\ndata: "run_id":7,"delta":"Hel"}\n\n',
          'id: 3\nevent: run.output.delta\ndata: {"type":"run.out',
        ],
        "drop",
      ),
      sse([
        "retry: 5\n\n",
        'id: 3\nevent: run.output.delta\ndata: {"type":"run.output.delta","run_id":7,"delta":"lo"}\n\n',
        'id: 4\nevent: run.future_event\ndata: {"type":"run.future_event","run_id":7}\n\n',
      ]), // ends cleanly but before the run is over: reconnect too
      sse([
        'id: 5\nevent: run.completed\ndata: {"type":"run.completed","run_id":7,"status":"completed"}\n\n',
        'id: 6\nevent: run.status\ndata: {"type":"run.status","run_id":7}\n\n',
      ]),
    ];
    const fetch = async (url: string, init: RequestInit): Promise<Response> => {
      calls.push({ url, headers: new Headers(init.headers) });
      const r = responses.shift();
      if (!r) throw new Error("unexpected extra connection");
      return r;
    };
    let n = 0;
    const events: RunEvent[] = await collect(
      streamRunEvents(7, {
        baseUrl: "http://api.test/",
        token: () => `token-${++n}`,
        retryDelayMs: 1,
        fetch,
      }),
    );

    assert.deepEqual(
      events.map((e) => [e.id, e.event]),
      [
        ["1", "run.status"],
        ["2", "run.output.delta"],
        ["3", "run.output.delta"],
        ["5", "run.completed"],
      ],
    );
    const delta = events[1]?.data;
    assert.equal(delta?.delta, "Hel"); // two data lines joined by "\n" still parse as JSON
    assert.equal(events[0]?.data.status, "in_progress");
    assert.equal(calls.length, 3);
    assert.ok(calls.every((c) => c.url === "http://api.test/api/v1/agent-runs/7/events"));
    assert.deepEqual(
      calls.map((c) => [c.headers.get("Authorization"), c.headers.get("Last-Event-ID"), c.headers.get("Accept")]),
      [
        ["Bearer token-1", null, "text/event-stream"],
        ["Bearer token-2", "2", "text/event-stream"],
        ["Bearer token-3", "4", "text/event-stream"],
      ],
    );
  });

  it("starts after the given lastEventId", async () => {
    let sent: string | null = null;
    const events = await collect(
      streamRunEvents(8, {
        baseUrl: "http://api.test",
        lastEventId: "12",
        fetch: async (_url, init) => {
          sent = new Headers(init.headers).get("Last-Event-ID");
          return sse(['id: 13\nevent: run.failed\ndata: {"type":"run.failed","run_id":8}\n\n']);
        },
      }),
    );
    assert.equal(sent, "12");
    assert.deepEqual(events.map((e) => e.id), ["13"]);
  });

  it("throws error responses as typed ApiProblems without reconnecting", async () => {
    let connections = 0;
    const problem = {
      type: "/problems/not-found",
      title: "Not Found",
      status: 404,
      detail: "agent run 9 not found",
      request_id: "req-1",
    };
    await assert.rejects(
      collect(
        streamRunEvents(9, {
          baseUrl: "http://api.test",
          token: "t",
          fetch: async () => {
            connections++;
            return new Response(JSON.stringify(problem), {
              status: 404,
              headers: { "Content-Type": "application/problem+json" },
            });
          },
        }),
      ),
      (err: unknown) => {
        assert.ok(err instanceof ApiProblem);
        assert.equal(err.status, 404);
        assert.equal(err.type, "/problems/not-found");
        assert.equal(err.requestId, "req-1");
        return true;
      },
    );
    assert.equal(connections, 1);
  });

  it("gives up after maxReconnects failed connections in a row", async () => {
    let connections = 0;
    await assert.rejects(
      collect(
        streamRunEvents(1, {
          baseUrl: "http://api.test",
          retryDelayMs: 1,
          maxReconnects: 2,
          fetch: async () => {
            connections++;
            throw new TypeError("fetch failed");
          },
        }),
      ),
      /fetch failed/,
    );
    assert.equal(connections, 3);
  });

  it("ends quietly when aborted", async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const fetch = async (_url: string, init: RequestInit): Promise<Response> => {
      const signal = init.signal;
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(enc.encode('id: 1\nevent: run.status\ndata: {"type":"run.status","run_id":1}\n\n'));
          signal?.addEventListener("abort", () => c.error(signal.reason));
        },
      });
      return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
    };
    for await (const ev of streamRunEvents(1, { baseUrl: "http://api.test", signal: ac.signal, fetch })) {
      seen.push(ev.id);
      ac.abort();
    }
    assert.deepEqual(seen, ["1"]);
  });
});
