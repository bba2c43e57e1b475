import { decodeJwt } from "jose";

import { createVerifier } from "../../src/auth";
import { main } from "../../src/cli/token";
import { DEVELOPMENT_JWT_SECRET, loadConfig } from "../../src/config";

type Env = Record<string, string | undefined>;

async function run(argv: string[], env: Env = {}) {
  const stream = () => ({
    text: "",
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  });
  const streams = { stdout: stream(), stderr: stream() };
  const code = await main(argv, env, streams);
  return { code, stdout: streams.stdout.text, stderr: streams.stderr.text };
}

function verify(token: string, env: Env) {
  const config = loadConfig(env);
  return createVerifier(config.jwt, config.adminEmails)(`Bearer ${token}`);
}

describe("token CLI", () => {
  test("signs with development secret", async () => {
    const result = await run(["--email", "dev@example.com"]);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(result.stderr).toMatch(/development secret/);
    const viewer = await verify(result.stdout.trim(), {});
    expect(viewer.email).toBe("dev@example.com");
    expect(viewer.isAdmin).toBe(false);
    expect(loadConfig({}).jwt.secret).toBe(DEVELOPMENT_JWT_SECRET);
  });

  test("signs with JWT_SECRET and claims", async () => {
    const env = {
      JWT_SECRET: "token-test-secret",
      JWT_ISSUER: "https://issuer.example.com",
      JWT_AUDIENCE: "pulse-gateway",
    };

    const result = await run(["--email", "user@example.com"], env);

    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    const token = result.stdout.trim();
    const viewer = await verify(token, env);
    expect(viewer.email).toBe("user@example.com");
    const claims = decodeJwt(token);
    expect(claims.iss).toBe("https://issuer.example.com");
    expect(claims.aud).toBe("pulse-gateway");
  });

  test("other secret rejects token", async () => {
    const result = await run(["--email", "user@example.com"], {
      JWT_SECRET: "one-secret",
    });

    await expect(
      verify(result.stdout.trim(), { JWT_SECRET: "another-secret" }),
    ).rejects.toThrow(/signature is invalid/);
  });

  test("expires-in sets exp", async () => {
    const result = await run([
      "--email",
      "a@example.com",
      "--expires-in",
      "90m",
    ]);

    expect(result.code).toBe(0);
    const claims = decodeJwt(result.stdout.trim());
    expect(claims.exp! - claims.iat!).toBe(90 * 60);
  });

  test("default lifetime is 12h", async () => {
    const result = await run(["--email", "a@example.com"]);

    const claims = decodeJwt(result.stdout.trim());
    expect(claims.exp! - claims.iat!).toBe(12 * 3600);
  });

  test.each(["3", "0h", "1.5h", "-1h", "2 days", "12x"])(
    "rejects expires-in %s",
    async (value) => {
      const result = await run([
        "--email",
        "a@example.com",
        `--expires-in=${value}`,
      ]);

      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain(`--expires-in is "${value}"`);
    },
  );

  test("rejects missing email", async () => {
    const result = await run([]);

    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/Missing --email/);
  });

  test("rejects invalid email", async () => {
    const result = await run(["--email", "not-an-address"]);

    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/"not-an-address".*not a valid e-mail/);
  });

  test("rejects unknown option", async () => {
    const result = await run(["--email", "a@example.com", "--bogus"]);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--bogus/);
    expect(result.stderr).toMatch(/--help/);
  });

  test("rejects when JWKS configured", async () => {
    const result = await run(["--email", "a@example.com"], {
      JWT_JWKS_URL: "https://idp.example.com/.well-known/jwks.json",
    });

    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/JWT_JWKS_URL is set/);
    expect(result.stderr).toMatch(/identity provider/);
  });

  test("reports invalid configuration", async () => {
    const result = await run(["--email", "a@example.com"], {
      NODE_ENV: "production",
    });

    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/JWT_SECRET/);
  });

  test("admin flag prints reminder", async () => {
    const env = { JWT_SECRET: "s", ADMIN_EMAILS: "boss@example.com" };

    const listed = await run(["--email", "Boss@example.com", "--admin"], env);
    const unlisted = await run(["--email", "a@example.com", "--admin"], env);

    expect(listed.code).toBe(0);
    expect(listed.stderr).toMatch(/ADMIN_EMAILS/);
    expect(listed.stderr).toMatch(/is listed there/);
    expect(unlisted.stderr).toMatch(/is not listed there/);
    expect(decodeJwt(listed.stdout.trim())).not.toHaveProperty("admin");
    const viewer = await verify(listed.stdout.trim(), env);
    expect(viewer.isAdmin).toBe(true);
  });

  test("prints help", async () => {
    const result = await run(["--help"]);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: npm run token -- --email ADDRESS/);
    expect(result.stderr).toBe("");
  });
});
