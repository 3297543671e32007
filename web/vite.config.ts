/// <reference types="vitest/config" />
// Builds graft's web UI into the Python package (src/graft/server/static), which
// `graft serve` ships and serves at `/`. `npm run dev` proxies the API to a local graft.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

const target = process.env.GRAFT_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  plugins: [preact()],
  build: {
    outDir: "../src/graft/server/static",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // No inline scripts or styles anywhere: the static route's CSP forbids them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  server: {
    port: 5173,
    proxy: {
      "/v1": { target, changeOrigin: false },
      "/healthz": { target },
    },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
  },
});
