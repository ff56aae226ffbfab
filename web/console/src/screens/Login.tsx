import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { session } from "../api.ts";
import { navigate } from "../router.ts";
import { ErrorAlert, Screen } from "../ui.tsx";

export function Login() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation({
    mutationFn: () => session.login(email, password),
    onSuccess: () => {
      if (!/^\/console\/.+/.test(window.location.pathname)) navigate("/tasks");
    },
  });
  return (
    <div className="login">
      <Screen title="Log in">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            login.mutate();
          }}
        >
          <div className="field">
            <label htmlFor="email">Email</label>
            <input id="email" type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="password">Password</label>
            <input
              id="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          <ErrorAlert error={login.error} />
          <button type="submit" className="primary" disabled={login.isPending}>
            {login.isPending ? "Logging in…" : "Log in"}
          </button>
        </form>
      </Screen>
    </div>
  );
}
