// The frame: a banner for the connection, the navigation, and the screen of the path.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, probeServer, session, unwrap, useConnection, useLoggedIn } from "./api.ts";
import { navigate, usePath } from "./router.ts";
import { Agents } from "./screens/Agents.tsx";
import { ApiKeys } from "./screens/ApiKeys.tsx";
import { Audit } from "./screens/Audit.tsx";
import { Login } from "./screens/Login.tsx";
import { RunDetail, Runs } from "./screens/Runs.tsx";
import { Tasks } from "./screens/Tasks.tsx";
import { AdminsOnly, WebhookDetail, Webhooks } from "./screens/Webhooks.tsx";
import { Link } from "./ui.tsx";

const NAV: { to: string; label: string; adminOnly?: boolean }[] = [
  { to: "/tasks", label: "Tasks" },
  { to: "/agents", label: "Agents" },
  { to: "/runs", label: "Runs" },
  { to: "/api-keys", label: "API keys" },
  { to: "/webhooks", label: "Webhooks", adminOnly: true },
  { to: "/audit", label: "Audit log" },
];

export function App() {
  const loggedIn = useLoggedIn();
  const path = usePath();
  const queryClient = useQueryClient();
  useEffect(() => {
    if (!loggedIn) queryClient.clear();
  }, [loggedIn, queryClient]);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <ConnectionBanner />
      {loggedIn ? (
        <Shell path={path} />
      ) : (
        <main id="main">
          <Login />
        </main>
      )}
    </>
  );
}

function Shell({ path }: { path: string }) {
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/users/me")) });
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);
  return (
    <>
      <header className="top">
        <span className="brand">Automation</span>
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          Menu
        </button>
        <nav id="nav" aria-label="Main" className={menuOpen ? "open" : ""}>
          <ul>
            {NAV.filter((n) => !n.adminOnly || me.data?.is_admin).map((n) => (
              <li key={n.to}>
                <Link to={n.to} {...(path.startsWith(n.to) ? { "aria-current": "page" as const } : {})}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span>{me.data?.email}</span>
          <button type="button" onClick={() => void session.logout().catch(() => undefined)}>
            Log out
          </button>
        </div>
      </header>
      <main id="main">{route(path, me.data?.is_admin)}</main>
    </>
  );
}

/** The screen of a path; `isAdmin` is undefined until the user is known. */
function route(path: string, isAdmin: boolean | undefined) {
  const run = /^\/runs\/(\d+)$/.exec(path);
  if (run?.[1]) return <RunDetail key={run[1]} runId={Number(run[1])} />;
  const hook = /^\/webhooks(?:\/(\d+))?$/.exec(path);
  if (hook) {
    if (isAdmin === undefined) return null;
    if (!isAdmin) return <AdminsOnly />;
    return hook[1] ? <WebhookDetail key={hook[1]} webhookId={Number(hook[1])} /> : <Webhooks />;
  }
  switch (path) {
    case "/agents":
      return <Agents />;
    case "/runs":
      return <Runs />;
    case "/api-keys":
      return <ApiKeys />;
    case "/audit":
      return <Audit isAdmin={isAdmin ?? false} />;
    case "/tasks":
      return <Tasks />;
    default:
      return <Redirect to="/tasks" />;
  }
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}

/** The server down (with a retry) or a request waiting for its Retry-After. */
function ConnectionBanner() {
  const { down, retryAt } = useConnection();
  const queryClient = useQueryClient();
  const [now, setNow] = useState(Date.now());
  const [checking, setChecking] = useState(false);
  useEffect(() => {
    if (!retryAt) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [retryAt]);
  if (down) {
    return (
      <div className="banner down" role="alert">
        <span>The server cannot be reached. Your changes are kept on this page.</span>
        <button
          type="button"
          disabled={checking}
          onClick={async () => {
            setChecking(true);
            if (await probeServer()) await queryClient.refetchQueries({ type: "active" });
            setChecking(false);
          }}
        >
          {checking ? "Checking…" : "Retry"}
        </button>
      </div>
    );
  }
  if (retryAt) {
    const s = Math.max(0, Math.ceil((retryAt - now) / 1000));
    return (
      <div className="banner wait" role="status">
        Too many requests: retrying in {s} s, as the server asked.
      </div>
    );
  }
  return null;
}
