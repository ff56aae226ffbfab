// Builds the console into gen/console/dist, which the binary embeds and serves at /console/.
// The API client is the generated one, taken from its sources (gen/ts/src) so the build
// needs no separate build of the client package.
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  base: "/console/",
  plugins: [react()],
  resolve: {
    alias: {
      "@enterprise-automation/api-client": here("../../gen/ts/src/index.ts"),
      // gen/ts/src imports openapi-fetch; resolve it from here, whether or not gen/ts has node_modules.
      "openapi-fetch": here("./node_modules/openapi-fetch/dist/index.mjs"),
    },
  },
  build: {
    outDir: here("../../gen/console/dist"),
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` next to `make run`: the API on :8000.
    proxy: { "/api": "http://localhost:8000" },
  },
});
