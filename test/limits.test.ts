// Request limits: field count (aliases included) and body size, each
// rejected with a JSON error that names what to change.
import type { Gateway } from "../src/server";
import { MAX_FIELDS_PER_REQUEST } from "../src/schema";
import {
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let token: string;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  token = await tokenFor(uniqueEmail());
});

afterAll(() => cleanup.run());

function aliases(count: number): string {
  const fields = Array.from({ length: count }, (_, i) => `a${i}: viewer { email }`);
  return `{ ${fields.join(" ")} }`;
}

test("fields at the limit accepted", async () => {
  const response = await gql(gateway, aliases(MAX_FIELDS_PER_REQUEST / 2), {}, token);
  expect(response.errors).toBeUndefined();
});

test("too many aliased fields rejected", async () => {
  const response = await gql(gateway, aliases(MAX_FIELDS_PER_REQUEST), {}, token);
  expect(errorCodes(response)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
  expect(response.errors?.[0].message).toContain(`${MAX_FIELDS_PER_REQUEST} fields`);
});

test("oversized body gets JSON 413", async () => {
  const response = await fetch(gateway.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `{ viewer { email } } #${"x".repeat(2_000_000)}` }),
  });
  const body = (await response.json()) as { errors: { message: string }[] };
  expect(response.status).toBe(413);
  expect(body.errors[0].message).toMatch(/larger than 1mb/);
});

test("invalid JSON body gets JSON 400", async () => {
  const response = await fetch(gateway.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{not json",
  });
  const body = (await response.json()) as { errors: { message: string }[] };
  expect(response.status).toBe(400);
  expect(body.errors[0].message).toMatch(/not valid JSON/);
});
