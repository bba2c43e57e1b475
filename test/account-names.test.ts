// New account names must be lower case, because RabbitMQ user names are
// case-sensitive and "Foo" beside "foo" would be two accounts.
import type { Gateway } from "../src/server";
import {
  brokerAdmin,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
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

const CREATE_ACCOUNT = `mutation ($username: String!) {
  createAccount(input: { username: $username }) { password }
}`;

test.each([
  ["leading capital", (name: string) => `Foo-${name}`],
  ["capital inside", (name: string) => `foo-${name}X`],
  ["all capitals", (name: string) => `FOO-${name.toUpperCase()}`],
])("%s rejected with lower-case hint", async (_case, build) => {
  const username = build(uniqueName("acct"));
  const response = await gql(gateway, CREATE_ACCOUNT, { username }, token);
  cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
  expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
  expect(response.errors?.[0].message).toContain("lower case");
  expect(response.errors?.[0].message).toContain(JSON.stringify(username.toLowerCase()));
  expect(await brokerAdmin().userExists(username)).toBe(false);
  expect(await gateway.db.account.findUnique({ where: { username } })).toBeNull();
});

test("lower-case twin of a rejected name", async () => {
  const username = uniqueName("twin");
  const upper = await gql(gateway, CREATE_ACCOUNT, { username: username.toUpperCase() }, token);
  expect(errorCodes(upper)).toEqual(["BAD_USER_INPUT"]);
  await createTestAccount(gateway, cleanup, username, token);
  cleanup.add(() =>
    gql(gateway, `mutation ($u: String!) { deleteAccount(username: $u) }`, { u: username }, token),
  );
  expect(await brokerAdmin().userExists(username)).toBe(true);
  expect(await brokerAdmin().userExists(username.toUpperCase())).toBe(false);
});
