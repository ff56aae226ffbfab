// `vite preview` serves the build and forwards /api to the server (API_URL), so the app
// calls the API on its own origin, as behind a production reverse proxy.
import { defineConfig } from "vite";

export default defineConfig({
  preview: {
    host: "127.0.0.1",
    proxy: { "/api": { target: process.env.API_URL ?? "http://127.0.0.1:8000", changeOrigin: false } },
  },
});
