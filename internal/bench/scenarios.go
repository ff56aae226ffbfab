package bench

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

// scenarioDef is one scenario: how to make its requests and its baseline operation. The
// baselines call the same domain service methods the HTTP handlers call, through the same
// store and a pgx pool, so they run exactly the service's SQL statements (and follow it
// when it changes); only HTTP, routing, contract validation, token verification and JSON
// are left out. The server as deployed answers the principal from its record cache, so
// the baselines of its scenarios do not look the principal up; the -nocache scenarios run
// against an instance with CACHE_TTL=0, and their baselines add the principal lookup.
type scenarioDef struct {
	name     string
	desc     string // what is measured, for the report
	separate bool
	noCache  bool // against the instance without the record cache
	httpWhat string
	baseWhat string
	// targeter makes the HTTP requests; baseline the equivalent SQL operation. Both are
	// called from many goroutines at once.
	targeter func(e *runEnv) vegeta.Targeter
	baseline func(e *runEnv) func(ctx context.Context) error
	// custom replaces the generic HTTP + baseline measurement (the agent-run pipeline).
	custom func(ctx context.Context, e *runEnv, def scenarioDef) (Scenario, error)
}

// scenarios in run order. Login is last: argon2id's memory (19 MiB per concurrent hash)
// would otherwise inflate the RSS of every later scenario.
var scenarios = []scenarioDef{
	{
		name: "users-get", desc: "GET /api/v1/users/{id}, random seeded user, as admin",
		httpWhat: "GET /api/v1/users/{id} (random seeded user) as the admin; the 10k users fit the record cache, so after the warm-up most reads are cache hits",
		baseWhat: "user.Service.Get (UserGetByID) without a cache: the SQL the request needs",
		targeter: usersGetTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := e.users.Get(ctx, e.admin.principal, e.randomUser())
				return err
			}
		},
	},
	{
		name: "users-get-nocache", desc: "GET /api/v1/users/{id}, random seeded user, as admin, CACHE_TTL=0", noCache: true,
		httpWhat: "GET /api/v1/users/{id} (random seeded user) as the admin, on an instance with CACHE_TTL=0 (principal and user read from PostgreSQL on every request)",
		baseWhat: "UserGetByID (the principal, as the auth middleware does without a cache) + user.Service.Get (UserGetByID)",
		targeter: usersGetTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				if err := e.principal(ctx, e.admin); err != nil {
					return err
				}
				_, err := e.users.Get(ctx, e.admin.principal, e.randomUser())
				return err
			}
		},
	},
	{
		name: "tasks-get", desc: "GET /api/v1/tasks/{id}, random seeded task, as admin",
		httpWhat: "GET /api/v1/tasks/{id} (random seeded task among 1M) as the admin; the principal comes from the record cache, the task mostly does not (random ids)",
		baseWhat: "task.Service.Get (TaskGetByID)",
		targeter: tasksGetTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := e.tasks.Get(ctx, e.admin.principal, e.randomTask())
				return err
			}
		},
	},
	{
		name: "tasks-get-apikey", desc: "GET /api/v1/tasks/{id}, random seeded task, as admin with an API key",
		httpWhat: "GET /api/v1/tasks/{id} (random seeded task among 1M) with the admin's API key (X-API-Key, scope tasks:read) instead of an access token: the key's record and its owner come from the record cache",
		baseWhat: "task.Service.Get (TaskGetByID), as for tasks-get",
		targeter: func(e *runEnv) vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.Header = http.MethodGet, e.adminKeyHeader
				t.URL = e.base + "/api/v1/tasks/" + strconv.FormatInt(e.randomTask(), 10)
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := e.tasks.Get(ctx, e.admin.principal, e.randomTask())
				return err
			}
		},
	},
	{
		name: "mcp-get-task", desc: "MCP tools/call get_task, random seeded task, as admin",
		httpWhat: "POST /mcp: JSON-RPC tools/call get_task (random seeded task among 1M) as the admin, stateless Streamable HTTP with a JSON answer; the call becomes GET /api/v1/tasks/{id} served in-process through the same middleware, so compare with tasks-get",
		baseWhat: "task.Service.Get (TaskGetByID), as for tasks-get",
		targeter: mcpGetTaskTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := e.tasks.Get(ctx, e.admin.principal, e.randomTask())
				return err
			}
		},
	},
	{
		name: "tasks-get-nocache", desc: "GET /api/v1/tasks/{id}, random seeded task, as admin, CACHE_TTL=0", noCache: true,
		httpWhat: "GET /api/v1/tasks/{id} (random seeded task) as the admin, on an instance with CACHE_TTL=0",
		baseWhat: "UserGetByID (principal) + task.Service.Get (TaskGetByID)",
		targeter: tasksGetTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				if err := e.principal(ctx, e.admin); err != nil {
					return err
				}
				_, err := e.tasks.Get(ctx, e.admin.principal, e.randomTask())
				return err
			}
		},
	},
	{
		name: "tasks-list", desc: "GET /api/v1/tasks?status=…&assignee_id=…&limit=20, default sort, as admin",
		httpWhat: "GET /api/v1/tasks?status={random}&assignee_id={random user}&limit=20 (default sort -created_at) as the admin",
		baseWhat: "task.Service.List with the same filter, sort and limit (TaskCount, then TaskList)",
		targeter: func(e *runEnv) vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.Header = http.MethodGet, e.admin.header
				t.URL = fmt.Sprintf("%s/api/v1/tasks?status=%s&assignee_id=%d&limit=20", e.base, randomStatus(), e.randomUser())
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				assignee := e.randomUser()
				_, err := e.tasks.List(ctx, e.admin.principal, task.ListParams{
					Page:     page.Request{Skip: 0, Limit: 20},
					Statuses: []task.Status{task.Status(randomStatus())}, AssigneeID: &assignee,
				})
				return err
			}
		},
	},
	{
		name: "tasks-create", desc: "POST /api/v1/tasks with assignee, tags, due date, as a normal user",
		httpWhat: "POST /api/v1/tasks (title, description, priority, active assignee, 0–3 tags, due date) as one of the seeded users",
		baseWhat: "task.Service.Create (UserGetByID for the assignee check, TaskCreate)",
		targeter: tasksCreateTargeter,
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				actor := e.randomActor()
				in := e.newTaskInput()
				_, err := e.tasks.Create(ctx, actor.principal, task.CreateParams{
					Title: in.title, Description: in.description, Priority: task.Priority(in.priority),
					AssigneeID: &in.assignee, DueAt: &in.due, Tags: in.tags,
				})
				return err
			}
		},
	},
	{
		name: "tasks-patch", desc: `PATCH /api/v1/tasks/{id} with If-Match: "1", each request a different task`,
		httpWhat: `PATCH /api/v1/tasks/{id} {"priority": …} with If-Match: "1" as the admin, each request on a task not changed before`,
		baseWhat: `task.Service.Update with If-Match "1" (in one transaction TaskGetByIDForUpdate, TaskUpdate)`,
		targeter: func(e *runEnv) vegeta.Targeter {
			return func(t *vegeta.Target) error {
				id, ok := e.nextFreshTask()
				if !ok {
					return errExhausted
				}
				t.Method, t.Header = http.MethodPatch, e.admin.patchHeader
				t.URL = e.base + "/api/v1/tasks/" + strconv.FormatInt(id, 10)
				t.Body = []byte(`{"priority": "` + priorities[rand.IntN(len(priorities))] + `"}`)
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			ifMatch := `"1"`
			return func(ctx context.Context) error {
				id, ok := e.nextFreshTask()
				if !ok {
					return errExhausted
				}
				pr := task.Priority(priorities[rand.IntN(len(priorities))])
				_, err := e.tasks.Update(ctx, e.admin.principal, id, task.UpdateParams{Priority: &pr}, etag.IfMatch(&ifMatch))
				return err
			}
		},
	},
	{
		name: "agent-runs", desc: "agent-run pipeline: POST /api/v1/agents/{id}/runs → worker → scripted zero-latency model → completed",
		httpWhat: "runs created with POST /api/v1/agents/{id}/runs (random task_id) as the admin, executed by the server's workers against the zero-latency scripted model; req/s = runs completed per second (first create → last completion), latencies = create → completed",
		baseWhat: "the same code without HTTP in this process: agent.Service.CreateRun (agent and task lookups, run + River job + event in one transaction) and River workers running agent.Runner on a queue of their own, same worker count",
		custom:   runPipeline,
	},
	{
		name: "agent-runs-approval", desc: "approval pipeline: create → requires_action → approve → completed, scripted zero-latency model",
		httpWhat: "each client creates a run of an agent whose get_task needs approval, polls it (5 ms) until requires_action, approves the call and goes on; req/s = runs completed per second (first create → last completion), latencies = approval answered → run completed",
		baseWhat: "the same clients and polling with runs of an agent whose tools need no approval (create → completed); ratio = runs/s with the approval round trip ÷ without",
		custom:   runApprovalPipeline,
	},
	{
		name: "webhooks", desc: "POST /api/v1/tasks with 3 local webhook endpoints subscribed to task.created, and their deliveries",
		httpWhat: "POST /api/v1/tasks (as tasks-create) with 3 local endpoints subscribed to task.created: the task's insert statement writes the event (outbox row, the task as stored); the server's dispatcher renders its body and fans it out (3 deliveries and River jobs, in batches) and its workers deliver them, signed, to receivers in the bench process; while the API is busy both the fan-out and the attempts are paced (WEBHOOK_BUSY_RATE) and the rest waits in the outbox; CPU per request includes the deliveries, drained after each slice",
		baseWhat: "the same POST /api/v1/tasks load with no webhook endpoint (webhooks off), alternating with the load with webhooks on in 5 rounds of a fifth of the duration each (each on slice's deliveries drain before the next slice); ratio = throughput on ÷ off over all rounds",
		custom:   runWebhooks,
	},
	{
		name: "login", desc: "POST /api/v1/auth/token (OAuth2 password grant) with correct credentials", separate: true,
		httpWhat: "POST /api/v1/auth/token (form: username, password) for a random active seeded user; argon2id (19 MiB, t=2) verification",
		baseWhat: "UserGetByEmail + SessionCreate + RefreshTokenCreate in one transaction (the SQL only: the ceiling without argon2id)",
		targeter: func(e *runEnv) vegeta.Targeter {
			header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			return func(t *vegeta.Target) error {
				email := e.data.activeEmails[rand.IntN(len(e.data.activeEmails))]
				t.Method, t.Header, t.URL = http.MethodPost, header, e.base+"/api/v1/auth/token"
				t.Body = []byte(url.Values{"username": {email}, "password": {UserPassword}}.Encode())
				return nil
			}
		},
		baseline: func(e *runEnv) func(context.Context) error {
			return func(ctx context.Context) error {
				email := e.data.activeEmails[rand.IntN(len(e.data.activeEmails))]
				u, err := e.store.UserGetByEmail(ctx, email)
				if err != nil {
					return err
				}
				raw := make([]byte, 32)
				_, _ = crand.Read(raw)
				sum := sha256.Sum256(raw)
				return e.store.InTx(ctx, func(q db.Querier) error {
					sess, err := q.SessionCreate(ctx, db.SessionCreateParams{FamilyID: uuid.New(), UserID: u.ID})
					if err != nil {
						return err
					}
					return q.RefreshTokenCreate(ctx, db.RefreshTokenCreateParams{
						UserID: u.ID, FamilyID: sess.FamilyID, TokenHash: sum[:], ExpiresAt: time.Now().Add(7 * 24 * time.Hour),
					})
				})
			}
		},
	},
}

// tasksCreateTargeter creates tasks as random seeded users (tasks-create, webhooks).
func tasksCreateTargeter(e *runEnv) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		in := e.newTaskInput()
		body, err := json.Marshal(in.body())
		if err != nil {
			return err
		}
		t.Method, t.Header, t.Body = http.MethodPost, e.randomActor().jsonHeader, body
		t.URL = e.base + "/api/v1/tasks"
		return nil
	}
}

// ScenarioNames lists the scenarios in run order.
func ScenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

func scenarioByName(name string) scenarioDef {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	panic("unknown scenario " + name)
}

func randomStatus() string { return taskStatuses[rand.IntN(len(taskStatuses))] }

func (e *runEnv) randomUser() int64 { return e.data.userIDs[rand.IntN(len(e.data.userIDs))] }

func (e *runEnv) randomTask() int64 {
	return e.data.minTaskID + rand.Int64N(e.data.maxTaskID-e.data.minTaskID+1)
}

func (e *runEnv) randomActor() *actor { return e.actors[rand.IntN(len(e.actors))] }

// nextFreshTask hands out seeded task ids in order, each once across the whole run, so
// every PATCH finds its task at version 1.
func (e *runEnv) nextFreshTask() (int64, bool) {
	id := e.data.minTaskID + e.patched.Add(1) - 1
	return id, id <= e.data.maxTaskID
}

func usersGetTargeter(e *runEnv) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.Header = http.MethodGet, e.admin.header
		t.URL = e.base + "/api/v1/users/" + strconv.FormatInt(e.randomUser(), 10)
		return nil
	}
}

func tasksGetTargeter(e *runEnv) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.Header = http.MethodGet, e.admin.header
		t.URL = e.base + "/api/v1/tasks/" + strconv.FormatInt(e.randomTask(), 10)
		return nil
	}
}

// mcpGetTaskTargeter calls the get_task tool as an MCP client does after its
// initialize: one JSON-RPC request per call, naming the negotiated protocol version.
func mcpGetTaskTargeter(e *runEnv) vegeta.Targeter {
	header := e.admin.header.Clone()
	header.Set("Content-Type", "application/json")
	header.Set("Accept", "application/json, text/event-stream")
	header.Set("Mcp-Protocol-Version", "2025-11-25")
	return func(t *vegeta.Target) error {
		t.Method, t.Header, t.URL = http.MethodPost, header, e.base+"/mcp"
		t.Body = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_task","arguments":{"task_id":` +
			strconv.FormatInt(e.randomTask(), 10) + `}}}`)
		return nil
	}
}

// principal is the SQL the auth middleware runs for every authenticated request (after
// verifying the token's signature, which is CPU only).
func (e *runEnv) principal(ctx context.Context, a *actor) error {
	u, err := e.store.UserGetByID(ctx, a.id)
	if err != nil {
		return err
	}
	if !u.IsActive {
		return fmt.Errorf("user %d is inactive", a.id)
	}
	return nil
}

// taskInput is one new task, the same for the HTTP request and the baseline.
type taskInput struct {
	title, description, priority string
	assignee                     int64
	due                          time.Time
	tags                         []string
}

func (e *runEnv) newTaskInput() taskInput {
	in := taskInput{
		title:       fmt.Sprintf("%s %s (bench)", verbs[rand.IntN(len(verbs))], objects[rand.IntN(len(objects))]),
		description: descriptions[rand.IntN(len(descriptions))],
		priority:    priorities[rand.IntN(len(priorities))],
		assignee:    e.data.activeIDs[rand.IntN(len(e.data.activeIDs))],
		due:         time.Now().UTC().Add(time.Duration(1+rand.IntN(60)) * 24 * time.Hour).Truncate(time.Second),
		tags:        []string{},
	}
	for k := rand.IntN(4); len(in.tags) < k; {
		if t := tagSet[rand.IntN(len(tagSet))]; !containsString(in.tags, t) {
			in.tags = append(in.tags, t)
		}
	}
	return in
}

func (in taskInput) body() map[string]any {
	return map[string]any{
		"title": in.title, "description": in.description, "priority": in.priority,
		"assignee_id": in.assignee, "due_at": in.due.Format(time.RFC3339), "tags": in.tags,
	}
}
