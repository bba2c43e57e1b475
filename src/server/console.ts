// The web console: static files built by `vite build` into one folder,
// served at "/" after the API routes, so those always take precedence.
import path from "node:path";

import express from "express";

// Everything the console loads comes from the gateway itself, so the page
// works offline and an injected script cannot send data elsewhere.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * Serves the built console from dir. While dir has no index.html (the
 * console was never built), GET / returns a short text saying how to build
 * it, and the API keeps working.
 */
export function mountConsole(app: express.Express, dir: string): void {
  app.use(
    express.static(dir, {
      index: "index.html",
      // Vite puts a content hash in every asset name, so assets never
      // change under one name, but index.html must be read again.
      setHeaders: (res, file) => {
        const hashed = file.includes(`${path.sep}assets${path.sep}`);
        res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
        res.setHeader(
          "cache-control",
          hashed ? "public, max-age=31536000, immutable" : "no-cache",
        );
      },
    }),
  );
  app.get("/", (_req, res) => {
    res
      .status(404)
      .type("text/plain")
      .send(
        `The web console is not built: ${dir}/index.html is missing. ` +
          `Run \`npm run build\` and reload this page; the API is at /graphql.\n`,
      );
  });
}
