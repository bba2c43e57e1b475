// Every name the management client puts in a URL reaches the API as
// exactly the path segment meant, whatever the name contains. A local HTTP
// server on 127.0.0.1 acts as the management API and records each
// request's path as it arrived, after fetch's own URL normalisation.
import http from "node:http";
import type { AddressInfo } from "node:net";

import fc from "fast-check";

import { ManagementClient } from "../../src/rabbitmq";
import { UnaddressableNameError } from "../../src/rabbitmq/management";
import { hostileName } from "./arbitraries";

interface Recorded {
  method: string;
  url: string;
}

const requests: Recorded[] = [];
let bindingsReply: unknown[] = [];
let server: http.Server;
let baseUrl: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push({ method: req.method!, url: req.url! });
    res.setHeader("content-type", "application/json");
    const isBindingList =
      req.method === "GET" && /^\/api\/bindings\/[^/]+\/e\/[^/]+\/q\/[^/]+$/.test(req.url!);
    res.end(JSON.stringify(isBindingList ? bindingsReply : {}));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://guest:guest@127.0.0.1:${port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Splits a recorded path into decoded segments, dropping the query. */
function segments(url: string): string[] {
  return url.split("?")[0].split("/").slice(1).map(decodeURIComponent);
}

const UNADDRESSABLE = ["", ".", ".."];

/** Names the client can put in a path: all but "", "." and "..". */
const addressable = hostileName.filter((name) => !UNADDRESSABLE.includes(name));
const RUNS = { numRuns: 60 };

async function recordOne(call: () => Promise<unknown>): Promise<Recorded[]> {
  requests.length = 0;
  await call();
  return [...requests];
}

test("user paths keep the name", async () => {
  await fc.assert(
    fc.asyncProperty(addressable, addressable, async (vhost, user) => {
      const client = new ManagementClient(baseUrl, vhost);
      const [exists] = await recordOne(() => client.userExists(user));
      expect(segments(exists.url)).toEqual(["api", "users", user]);
      const [permissions] = await recordOne(() =>
        client.setPermissions(user, { configure: "", write: "", read: "" }),
      );
      expect(segments(permissions.url)).toEqual(["api", "permissions", vhost, user]);
      const [deleted] = await recordOne(() => client.deleteUser(user));
      expect(deleted.method).toBe("DELETE");
      expect(segments(deleted.url)).toEqual(["api", "users", user]);
    }),
    RUNS,
  );
});

test("queue paths keep the name", async () => {
  await fc.assert(
    fc.asyncProperty(addressable, addressable, async (vhost, queue) => {
      const client = new ManagementClient(baseUrl, vhost);
      const [got] = await recordOne(() => client.getQueue(queue));
      expect(segments(got.url)).toEqual(["api", "queues", vhost, queue]);
      const [declared] = await recordOne(() =>
        client.declareQueue(queue, { durable: true }),
      );
      expect(declared.method).toBe("PUT");
      expect(segments(declared.url)).toEqual(["api", "queues", vhost, queue]);
      const [deleted] = await recordOne(() => client.deleteQueue(queue));
      expect(deleted.method).toBe("DELETE");
      expect(segments(deleted.url)).toEqual(["api", "queues", vhost, queue]);
      const [bindings] = await recordOne(() => client.listQueueBindings(queue));
      expect(segments(bindings.url)).toEqual(["api", "queues", vhost, queue, "bindings"]);
    }),
    RUNS,
  );
});

test("exchange and binding paths keep names", async () => {
  await fc.assert(
    fc.asyncProperty(
      addressable,
      addressable,
      addressable,
      hostileName,
      async (vhost, exchange, queue, routingKey) => {
        const client = new ManagementClient(baseUrl, vhost);
        const [got] = await recordOne(() => client.getExchange(exchange));
        expect(segments(got.url)).toEqual(["api", "exchanges", vhost, exchange]);
        const bindingPath = ["api", "bindings", vhost, "e", exchange, "q", queue];
        const [bound] = await recordOne(() =>
          client.bindQueue(exchange, queue, routingKey),
        );
        expect(bound.method).toBe("POST");
        expect(segments(bound.url)).toEqual(bindingPath);
      },
    ),
    RUNS,
  );
});

test("unbind deletes the listed properties key", async () => {
  await fc.assert(
    fc.asyncProperty(
      addressable,
      addressable,
      addressable,
      // The broker's properties key is the routing key escaped its own way,
      // so any text may come back, dot runs included.
      addressable,
      async (exchange, queue, routingKey, propertiesKey) => {
        const client = new ManagementClient(baseUrl, "/");
        bindingsReply = [
          { routing_key: routingKey, properties_key: propertiesKey },
          { routing_key: `${routingKey}-other`, properties_key: "other" },
        ];
        const recorded = await recordOne(() =>
          client.unbindQueue(exchange, queue, routingKey),
        );
        const bindingPath = ["api", "bindings", "/", "e", exchange, "q", queue];
        expect(recorded).toHaveLength(2);
        expect(segments(recorded[0].url)).toEqual(bindingPath);
        expect(recorded[1].method).toBe("DELETE");
        expect(segments(recorded[1].url)).toEqual([...bindingPath, propertiesKey]);
      },
    ),
    RUNS,
  );
});

test.each(UNADDRESSABLE)("name %j rejected before any request", async (name) => {
  const client = new ManagementClient(baseUrl, "/");
  requests.length = 0;
  await expect(client.deleteQueue(name)).rejects.toThrow(UnaddressableNameError);
  await expect(client.deleteUser(name)).rejects.toThrow(UnaddressableNameError);
  await expect(client.getExchange(name)).rejects.toThrow(UnaddressableNameError);
  await expect(client.bindQueue("exchange/a", name, "#")).rejects.toThrow(
    UnaddressableNameError,
  );
  expect(requests).toEqual([]);
});

test("unbind of a dot properties key sends no DELETE", async () => {
  const client = new ManagementClient(baseUrl, "/");
  bindingsReply = [{ routing_key: "..", properties_key: ".." }];
  requests.length = 0;
  await expect(client.unbindQueue("exchange/a", "queue/a/b", "..")).rejects.toThrow(
    UnaddressableNameError,
  );
  expect(requests.map((r) => r.method)).toEqual(["GET"]);
});

test("vhost of dots rejected at construction", () => {
  expect(() => new ManagementClient(baseUrl, "..")).toThrow(UnaddressableNameError);
});
