import { fileURLToPath } from "node:url";

import { defineConfig } from "vite";

// The gateway serves the build output at "/", so every asset is bundled
// and the console loads nothing from another origin.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: fileURLToPath(new URL("../dist/console", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
  },
});
