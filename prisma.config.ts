import { defineConfig } from "prisma/config";

// Used by the Prisma command-line tool only. The gateway reads DATABASE_URL
// through src/config and applies migrations itself at start-up.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: {
    url:
      process.env.DATABASE_URL ??
      "postgresql://postgres@127.0.0.1:5432/pulse_gateway",
  },
});
