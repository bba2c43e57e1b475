// Admin operations: users listed, admin granted and revoked (never the last
// admin, never an ADMIN_EMAILS admin), and account names reserved.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let admin: string;
let userEmail: string;
let user: string;

const USERS = `{ users { email isAdmin adminBySetting accounts } }`;
const GRANT = `mutation ($e: String!) { grantAdmin(email: $e) { email isAdmin } }`;
const REVOKE = `mutation ($e: String!) { revokeAdmin(email: $e) { email isAdmin } }`;
const RESERVED = `{ reservedAccountNames { name createdBy } }`;
const RESERVE = `mutation ($n: String!) { reserveAccountName(name: $n) { name createdBy } }`;
const UNRESERVE = `mutation ($n: String!) { unreserveAccountName(name: $n) { name } }`;
const CREATE = `mutation ($u: String!) {
  createAccount(input: { username: $u }) { password }
}`;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  admin = await tokenFor(ADMIN_EMAIL);
  userEmail = uniqueEmail("user");
  user = await tokenFor(userEmail);
});

afterAll(() => cleanup.run());

/** Clears the stored admin flag of `email` when the file ends. */
function unsetAdminLater(email: string): void {
  cleanup.add(() =>
    gateway.db.user.updateMany({ where: { email }, data: { isAdmin: false } }),
  );
}

async function createAccount(username: string, token: string) {
  const response = await gql(gateway, CREATE, { u: username }, token);
  if (response.data?.createAccount) {
    cleanup.add(() => brokerAdmin().deleteUser(username).catch(() => undefined));
  }
  return response;
}

describe("users", () => {
  test("non-admin cannot list users", async () => {
    const response = await gql(gateway, USERS, {}, user);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });

  test("admin lists users with accounts", async () => {
    const username = uniqueName("listed");
    await createAccount(username, user);
    const response = await gql(gateway, USERS, {}, admin);
    const users = response.data!.users as Record<string, unknown>[];
    expect(users).toContainEqual({
      email: userEmail,
      isAdmin: false,
      adminBySetting: false,
      accounts: [username],
    });
    expect(users).toContainEqual(
      expect.objectContaining({ email: ADMIN_EMAIL, adminBySetting: true }),
    );
  });
});

describe("grant and revoke", () => {
  test("granted admin gets admin rights", async () => {
    const email = uniqueEmail("granted");
    unsetAdminLater(email);
    const granted = await gql(gateway, GRANT, { e: email }, admin);
    expect(granted.data?.grantAdmin).toEqual({ email, isAdmin: true });
    const response = await gql(gateway, USERS, {}, await tokenFor(email));
    expect(response.errors).toBeUndefined();
  });

  test("granting an admin again conflicts", async () => {
    const response = await gql(gateway, GRANT, { e: ADMIN_EMAIL }, admin);
    expect(errorCodes(response)).toEqual(["CONFLICT"]);
  });

  test("non-admin cannot grant", async () => {
    const response = await gql(gateway, GRANT, { e: userEmail }, user);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    // The user may have no row yet, which also means no admin flag.
    const row = await gateway.db.user.findUnique({ where: { email: userEmail } });
    expect(row?.isAdmin ?? false).toBe(false);
  });

  test("invalid address rejected", async () => {
    const response = await gql(gateway, GRANT, { e: "nobody" }, admin);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain('"nobody"');
  });

  test("revoked admin loses admin rights", async () => {
    const email = uniqueEmail("revoked");
    unsetAdminLater(email);
    await gql(gateway, GRANT, { e: email }, admin);
    const revoked = await gql(gateway, REVOKE, { e: email }, admin);
    expect(revoked.data?.revokeAdmin).toEqual({ email, isAdmin: false });
    const response = await gql(gateway, USERS, {}, await tokenFor(email));
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });

  test("setting admin cannot be revoked", async () => {
    const response = await gql(gateway, REVOKE, { e: ADMIN_EMAIL }, admin);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain("ADMIN_EMAILS");
  });

  test("revoking a non-admin is not found", async () => {
    const response = await gql(gateway, REVOKE, { e: userEmail }, admin);
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  });

  test("non-admin cannot revoke", async () => {
    const email = uniqueEmail("kept");
    unsetAdminLater(email);
    await gql(gateway, GRANT, { e: email }, admin);
    const response = await gql(gateway, REVOKE, { e: email }, user);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    const row = await gateway.db.user.findUnique({ where: { email } });
    expect(row?.isAdmin).toBe(true);
  });
});

// A second gateway with no ADMIN_EMAILS, so only stored admins count. The
// test database belongs to this suite and its files run one at a time, so
// clearing every stored admin flag first affects no other test.
describe("without ADMIN_EMAILS", () => {
  let bare: Gateway;

  beforeAll(async () => {
    bare = await startGateway({ adminEmails: [] });
    cleanup.add(() => bare.stop());
  });

  beforeEach(async () => {
    await bare.db.user.updateMany({ data: { isAdmin: false } });
  });

  async function storedAdmin(prefix: string): Promise<[string, string]> {
    const email = uniqueEmail(prefix);
    unsetAdminLater(email);
    await bare.db.user.create({ data: { email, isAdmin: true } });
    return [email, await tokenFor(email)];
  }

  test("last admin cannot revoke themself", async () => {
    const [email, token] = await storedAdmin("last");
    const response = await gql(bare, REVOKE, { e: email }, token);
    expect(errorCodes(response)).toEqual(["CONFLICT"]);
    expect(response.errors![0].message).toContain("last admin");
    const row = await bare.db.user.findUnique({ where: { email } });
    expect(row?.isAdmin).toBe(true);
  });

  test("admin revokes themself after a grant", async () => {
    const [email, token] = await storedAdmin("handover");
    const successor = uniqueEmail("successor");
    unsetAdminLater(successor);
    await gql(bare, GRANT, { e: successor }, token);
    const response = await gql(bare, REVOKE, { e: email }, token);
    expect(response.data?.revokeAdmin).toEqual({ email, isAdmin: false });
  });

  test("mutual revokes leave one admin", async () => {
    const [first, firstToken] = await storedAdmin("first");
    const [second, secondToken] = await storedAdmin("second");
    const responses = await Promise.all([
      gql(bare, REVOKE, { e: second }, firstToken),
      gql(bare, REVOKE, { e: first }, secondToken),
    ]);
    const succeeded = responses.filter((r) => r.data?.revokeAdmin);
    expect(succeeded).toHaveLength(1);
    // The loser gets CONFLICT when both requests passed the admin check,
    // or FORBIDDEN when its token was verified after the winner committed.
    const codes = responses.flatMap(errorCodes);
    expect(codes).toHaveLength(1);
    expect(["CONFLICT", "FORBIDDEN"]).toContain(codes[0]);
    const admins = await bare.db.user.count({ where: { isAdmin: true } });
    expect(admins).toBe(1);
  });
});

describe("reserved names", () => {
  test("reserved name blocks creation", async () => {
    const name = uniqueName("Held");
    const reserved = await gql(gateway, RESERVE, { n: name }, admin);
    expect(reserved.data?.reserveAccountName).toEqual({
      name: name.toLowerCase(),
      createdBy: ADMIN_EMAIL,
    });
    cleanup.add(() => gql(gateway, UNRESERVE, { n: name }, admin));
    // Reserved in mixed case, created in lower case: new account names
    // must be lower case, so the reservation has to match across case.
    const response = await createAccount(name.toLowerCase(), user);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain("reserved");
    expect(await brokerAdmin().userExists(name.toLowerCase())).toBe(false);
  });

  test("reserved names are listed", async () => {
    const name = uniqueName("listed");
    await gql(gateway, RESERVE, { n: name }, admin);
    cleanup.add(() => gql(gateway, UNRESERVE, { n: name }, admin));
    const response = await gql(gateway, RESERVED, {}, admin);
    expect(response.data?.reservedAccountNames).toContainEqual({
      name,
      createdBy: ADMIN_EMAIL,
    });
  });

  test("freed name can be created", async () => {
    const name = uniqueName("freed");
    await gql(gateway, RESERVE, { n: name }, admin);
    const freed = await gql(gateway, UNRESERVE, { n: name }, admin);
    expect(freed.data?.unreserveAccountName.name).toBe(name);
    const response = await createAccount(name, user);
    expect(response.errors).toBeUndefined();
  });

  test("duplicate reservation conflicts", async () => {
    const name = uniqueName("twice");
    await gql(gateway, RESERVE, { n: name }, admin);
    cleanup.add(() => gql(gateway, UNRESERVE, { n: name }, admin));
    const response = await gql(gateway, RESERVE, { n: name }, admin);
    expect(errorCodes(response)).toEqual(["CONFLICT"]);
  });

  test("invalid name rejected", async () => {
    const response = await gql(gateway, RESERVE, { n: "9 lives" }, admin);
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain('"9 lives"');
  });

  test("unknown name not found", async () => {
    const response = await gql(gateway, UNRESERVE, { n: uniqueName("never") }, admin);
    expect(errorCodes(response)).toEqual(["NOT_FOUND"]);
  });

  test("non-admin cannot reserve", async () => {
    const name = uniqueName("sneaky");
    const response = await gql(gateway, RESERVE, { n: name }, user);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    const row = await gateway.db.reservedAccountName.findUnique({
      where: { name },
    });
    expect(row).toBeNull();
  });

  test("non-admin cannot list reserved", async () => {
    const response = await gql(gateway, RESERVED, {}, user);
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
  });
});
