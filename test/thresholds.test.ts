// setQueuePolicy and setAccountPolicy: a size left out keeps its value, a
// null size clears it, and owners cannot undo an admin's large size.
import type { Gateway } from "../src/server";
import {
  ADMIN_EMAIL,
  brokerAdmin,
  Cleanup,
  createTestAccount,
  errorCodes,
  gql,
  startGateway,
  tokenFor,
  uniqueEmail,
  uniqueName,
  type GraphQLResponse,
} from "./harness";

const cleanup = new Cleanup();
let gateway: Gateway;
let admin: string;
let owner: string;
let account: string;
let queue: string;

beforeAll(async () => {
  gateway = await startGateway();
  cleanup.add(() => gateway.stop());
  admin = await tokenFor(ADMIN_EMAIL);
  owner = await tokenFor(uniqueEmail("owner"));
  account = uniqueName("sized");
  await createTestAccount(gateway, cleanup, account, owner);
  const created = await gql(
    gateway,
    `mutation ($a: String!) {
      createQueue(input: { account: $a, name: "q", durable: false }) { name }
    }`,
    { a: account },
    owner,
  );
  expect(created.errors).toBeUndefined();
  queue = `queue/${account}/q`;
  cleanup.add(() => brokerAdmin().deleteQueue(queue).catch(() => undefined));
});

afterAll(() => cleanup.run());

/** Calls setQueuePolicy with only the arguments given. */
function setQueuePolicy(
  sizes: { warnSize?: number | null; deleteSize?: number | null },
  token = owner,
): Promise<GraphQLResponse> {
  const args = Object.entries(sizes).map(([key, value]) => `${key}: ${value}`);
  return gql(
    gateway,
    `mutation ($q: String!) {
      setQueuePolicy(name: $q, ${args.join(", ")}) { warnSize deleteSize source }
    }`,
    { q: queue },
    token,
  );
}

function setAccountPolicy(
  sizes: { warnSize?: number | null; deleteSize?: number | null },
  token = owner,
): Promise<GraphQLResponse> {
  const args = Object.entries(sizes).map(([key, value]) => `${key}: ${value}`);
  return gql(
    gateway,
    `mutation ($a: String!) {
      setAccountPolicy(account: $a, ${args.join(", ")}) { warnSize deleteSize source }
    }`,
    { a: account },
    token,
  );
}

async function storedQueueSizes() {
  return gateway.db.queue.findUnique({
    where: { name: queue },
    select: { warnSize: true, deleteSize: true },
  });
}

describe("setQueuePolicy", () => {
  test("omitted size kept", async () => {
    expect((await setQueuePolicy({ warnSize: 10, deleteSize: 50 })).errors)
      .toBeUndefined();
    const response = await setQueuePolicy({ deleteSize: 55 });
    expect(response.data?.setQueuePolicy).toEqual({
      warnSize: 10,
      deleteSize: 55,
      source: "QUEUE",
    });
  });

  test("null size cleared", async () => {
    await setQueuePolicy({ warnSize: 10, deleteSize: 50 });
    const response = await setQueuePolicy({ warnSize: null });
    expect(response.errors).toBeUndefined();
    expect(await storedQueueSizes()).toEqual({ warnSize: null, deleteSize: 50 });
  });

  test("omitted size checked against given", async () => {
    await setQueuePolicy({ warnSize: 10, deleteSize: 50 });
    const response = await setQueuePolicy({ warnSize: 60 });
    expect(errorCodes(response)).toEqual(["BAD_USER_INPUT"]);
    expect(response.errors![0].message).toContain("deleteSize (50)");
    expect(await storedQueueSizes()).toEqual({ warnSize: 10, deleteSize: 50 });
  });

  test("owner cannot lower admin's size", async () => {
    const large = gateway.config.guardian.maxDeleteSize + 1000;
    expect((await setQueuePolicy({ deleteSize: large }, admin)).errors)
      .toBeUndefined();

    const lowered = await setQueuePolicy({ deleteSize: 100 });
    expect(errorCodes(lowered)).toEqual(["FORBIDDEN"]);
    expect(lowered.errors![0].message).toContain(`deleteSize ${large}`);
    expect(lowered.errors![0].message).toContain("ask an admin");

    const cleared = await setQueuePolicy({ deleteSize: null });
    expect(errorCodes(cleared)).toEqual(["FORBIDDEN"]);
    expect((await storedQueueSizes())?.deleteSize).toBe(large);
  });

  test("owner keeps admin's size when leaving it out", async () => {
    const large = gateway.config.guardian.maxDeleteSize + 1000;
    await setQueuePolicy({ warnSize: 5, deleteSize: large }, admin);
    const response = await setQueuePolicy({ warnSize: 7 });
    expect(response.errors).toBeUndefined();
    expect(await storedQueueSizes()).toEqual({ warnSize: 7, deleteSize: large });
  });

  test("admin may lower own large size", async () => {
    const large = gateway.config.guardian.maxDeleteSize + 1000;
    await setQueuePolicy({ warnSize: 5, deleteSize: large }, admin);
    const response = await setQueuePolicy({ deleteSize: null }, admin);
    expect(response.errors).toBeUndefined();
    expect(await storedQueueSizes()).toEqual({ warnSize: 5, deleteSize: null });
  });
});

describe("setAccountPolicy", () => {
  test("omitted size kept", async () => {
    expect((await setAccountPolicy({ warnSize: 30, deleteSize: 70 })).errors)
      .toBeUndefined();
    const response = await setAccountPolicy({ warnSize: 40 });
    expect(response.data?.setAccountPolicy).toEqual({
      warnSize: 40,
      deleteSize: 70,
      source: "ACCOUNT",
    });
  });

  test("null size cleared", async () => {
    await setAccountPolicy({ warnSize: 30, deleteSize: 70 });
    const response = await setAccountPolicy({ deleteSize: null });
    expect(response.errors).toBeUndefined();
    const row = await gateway.db.accountPolicy.findFirst({
      where: { account: { username: account } },
    });
    expect(row?.warnSize).toBe(30);
    expect(row?.deleteSize).toBeNull();
  });

  test("owner cannot clear admin's size", async () => {
    const large = gateway.config.guardian.maxDeleteSize + 1;
    await setAccountPolicy({ deleteSize: large }, admin);
    const response = await setAccountPolicy({ deleteSize: null });
    expect(errorCodes(response)).toEqual(["FORBIDDEN"]);
    expect(response.errors![0].message).toContain("GUARDIAN_MAX_DELETE_SIZE");
  });
});
