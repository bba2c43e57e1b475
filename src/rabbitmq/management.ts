import { BrokerUnavailableError } from "../errors";

// A client for the RabbitMQ management HTTP API (rabbitmq_management
// plugin). Every vhost, user, queue and exchange name in a path goes through
// encodeURIComponent, so the vhost "/" is "%2F" and queue names keep their
// slashes inside one path segment.

export interface QueueInfo {
  name: string;
  vhost: string;
  durable: boolean;
  auto_delete: boolean;
  exclusive: boolean;
  /** Statistics fields are absent until the broker has collected them. */
  messages?: number;
  messages_ready?: number;
  messages_unacknowledged?: number;
  consumers?: number;
  /** Message rates; absent until messages have passed through the queue. */
  message_stats?: {
    publish_details?: { rate: number };
    deliver_get_details?: { rate: number };
  };
}

export interface BindingInfo {
  source: string;
  vhost: string;
  destination: string;
  destination_type: "queue" | "exchange";
  routing_key: string;
  properties_key: string;
  arguments: Record<string, unknown>;
}

export interface ExchangeInfo {
  name: string;
  type: string;
  durable: boolean;
}

/** A RabbitMQ policy of the client's vhost, as the management API shows it. */
export interface PolicyInfo {
  name: string;
  pattern: string;
  "apply-to": "queues" | "exchanges" | "all";
  priority: number;
  definition: Record<string, unknown>;
}

/** A message read by `POST /api/queues/{vhost}/{name}/get`. */
export interface FetchedMessage {
  exchange: string;
  routing_key: string;
  redelivered: boolean;
  /** Messages left in the queue after this one was taken. */
  message_count: number;
  /** The body as text, or base64 when payload_encoding is "base64". */
  payload: string;
  payload_bytes: number;
  payload_encoding: "string" | "base64";
  properties: Record<string, unknown>;
}

/** A RabbitMQ user as GET /api/users/<name> returns it. */
export interface UserInfo {
  name: string;
  password_hash: string;
  hashing_algorithm: string;
  /**
   * A list on RabbitMQ 3.10; older versions may send a comma-separated
   * string.
   */
  tags: string[] | string;
}

export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

/** A management API reply other than 2xx, with the broker's facts kept. */
export class ManagementApiError extends Error {
  override name = "ManagementApiError";

  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly reason: string,
  ) {
    super(`RabbitMQ management API ${method} ${path} returned ${status}: ${reason}`);
  }
}

/**
 * A name the management API cannot address as a path segment: "", "." or
 * "..". The client throws it before sending anything.
 */
export class UnaddressableNameError extends Error {
  override name = "UnaddressableNameError";

  constructor(readonly value: string) {
    super(
      `The RabbitMQ management API cannot address the name ` +
        `${JSON.stringify(value)}: an empty path segment names the whole ` +
        `collection, and "." and ".." name a parent path even when ` +
        `percent-encoded. Use another name, or manage this object over AMQP ` +
        `or with rabbitmqctl.`,
    );
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ManagementApiError && error.status === 404;
}

const QUEUE_COLUMNS = [
  "name",
  "vhost",
  "durable",
  "auto_delete",
  "exclusive",
  "messages",
  "messages_ready",
  "messages_unacknowledged",
  "consumers",
  "message_stats",
].join(",");

/**
 * Default cap on management API requests in flight. Each request uses a
 * connection, and the broker fails once it runs out of file descriptors
 * (1024 on a default Linux install), so a burst of GraphQL fields must
 * queue here rather than open one connection each.
 */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8;

export class ManagementClient {
  private readonly baseUrl: string;
  private readonly limiter: ConcurrencyLimiter;
  private readonly authorization: string;
  private readonly vhostSegment: string;

  /**
   * @param managementUrl base URL with user and password, for example
   *   http://guest:guest@127.0.0.1:15672
   */
  constructor(
    managementUrl: string,
    readonly vhost: string,
    private readonly timeoutMs = 10_000,
    maxConcurrentRequests = DEFAULT_MAX_CONCURRENT_REQUESTS,
  ) {
    this.limiter = new ConcurrencyLimiter(maxConcurrentRequests);
    const url = new URL(managementUrl);
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    url.username = "";
    url.password = "";
    this.baseUrl = url.toString().replace(/\/$/, "");
    this.authorization =
      "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
    this.vhostSegment = enc(vhost);
  }

  /** Address of the API without credentials, for messages and logs. */
  get address(): string {
    return this.baseUrl;
  }

  overview(): Promise<{ rabbitmq_version: string }> {
    return this.request("GET", "/api/overview");
  }

  /**
   * Checks that the vhost exists and that `user` has permissions on it,
   * and throws BrokerUnavailableError naming the vhost and the fix
   * otherwise.
   */
  async checkVhost(user: string): Promise<void> {
    if (!(await this.vhostExists())) throw this.missingVhostError();
    try {
      await this.request("GET", `/api/permissions/${this.vhostSegment}/${enc(user)}`);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      throw new BrokerUnavailableError(
        `RabbitMQ user "${user}" has no permissions on vhost ` +
          `"${this.vhost}", so the gateway cannot use it over AMQP; run ` +
          `\`rabbitmqctl set_permissions -p ${shellQuote(this.vhost)} ` +
          `${shellQuote(user)} '.*' '.*' '.*'\`.`,
        { vhost: this.vhost, user },
      );
    }
  }

  private async vhostExists(): Promise<boolean> {
    try {
      const path = `/api/vhosts/${this.vhostSegment}`;
      await this.limiter.run(() => this.send("GET", path));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  private missingVhostError(): BrokerUnavailableError {
    return new BrokerUnavailableError(
      `RabbitMQ vhost "${this.vhost}" (RABBITMQ_VHOST, or the vhost in ` +
        `AMQP_URL) does not exist; create it with \`rabbitmqctl add_vhost ` +
        `${shellQuote(this.vhost)}\` and give the gateway's user ` +
        `permissions on it, or set RABBITMQ_VHOST to an existing vhost.`,
      { vhost: this.vhost },
    );
  }

  async userExists(name: string): Promise<boolean> {
    try {
      await this.request("GET", `/api/users/${enc(name)}`);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Returns the user with its password hash, or null when it is missing. */
  async getUser(name: string): Promise<UserInfo | null> {
    try {
      return await this.request<UserInfo>("GET", `/api/users/${enc(name)}`);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /**
   * Creates a user again from what getUser returned. The stored password
   * hash is reused, so the user's password keeps working.
   */
  async restoreUser(user: UserInfo): Promise<void> {
    const tags = Array.isArray(user.tags) ? user.tags.join(",") : user.tags;
    await this.request("PUT", `/api/users/${enc(user.name)}`, {
      password_hash: user.password_hash,
      hashing_algorithm: user.hashing_algorithm,
      tags,
    });
  }

  /** Names of every RabbitMQ user of the broker. */
  async listUserNames(): Promise<string[]> {
    const users: { name: string }[] = await this.request(
      "GET",
      "/api/users?columns=name",
    );
    return users.map((user) => user.name);
  }

  async createUser(name: string, password: string): Promise<void> {
    await this.request("PUT", `/api/users/${enc(name)}`, {
      password,
      tags: "",
    });
  }

  /**
   * Replaces the user's password (and its tags, with none). RabbitMQ checks
   * passwords when a connection opens, so open connections are not closed.
   */
  async changePassword(name: string, password: string): Promise<void> {
    await this.request("PUT", `/api/users/${enc(name)}`, {
      password,
      tags: "",
    });
  }

  async deleteUser(name: string): Promise<void> {
    await this.request("DELETE", `/api/users/${enc(name)}`);
  }

  async setPermissions(user: string, permissions: Permissions): Promise<void> {
    await this.request(
      "PUT",
      `/api/permissions/${this.vhostSegment}/${enc(user)}`,
      permissions,
    );
  }

  async getPermissions(user: string): Promise<Permissions> {
    return this.request(
      "GET",
      `/api/permissions/${this.vhostSegment}/${enc(user)}`,
    );
  }

  async listQueues(): Promise<QueueInfo[]> {
    return this.request(
      "GET",
      `/api/queues/${this.vhostSegment}?columns=${QUEUE_COLUMNS}`,
    );
  }

  async getQueue(name: string): Promise<QueueInfo> {
    return this.request(
      "GET",
      `/api/queues/${this.vhostSegment}/${enc(name)}?columns=${QUEUE_COLUMNS}`,
    );
  }

  async declareQueue(
    name: string,
    options: { durable: boolean; autoDelete?: boolean },
  ): Promise<void> {
    await this.request("PUT", `/api/queues/${this.vhostSegment}/${enc(name)}`, {
      durable: options.durable,
      auto_delete: options.autoDelete ?? false,
      arguments: {},
    });
  }

  async deleteQueue(name: string): Promise<void> {
    await this.request(
      "DELETE",
      `/api/queues/${this.vhostSegment}/${enc(name)}`,
    );
  }

  listPolicies(): Promise<PolicyInfo[]> {
    return this.request("GET", `/api/policies/${this.vhostSegment}`);
  }

  getPolicy(name: string): Promise<PolicyInfo> {
    return this.request(
      "GET",
      `/api/policies/${this.vhostSegment}/${enc(name)}`,
    );
  }

  /** Creates or replaces a policy of the client's vhost. */
  async putPolicy(policy: PolicyInfo): Promise<void> {
    const { name, ...body } = policy;
    await this.request(
      "PUT",
      `/api/policies/${this.vhostSegment}/${enc(name)}`,
      body,
    );
  }

  async deletePolicy(name: string): Promise<void> {
    await this.request(
      "DELETE",
      `/api/policies/${this.vhostSegment}/${enc(name)}`,
    );
  }

  /** Removes every ready message of the queue. */
  async purgeQueue(name: string): Promise<void> {
    await this.request(
      "DELETE",
      `/api/queues/${this.vhostSegment}/${enc(name)}/contents`,
    );
  }

  /**
   * Takes up to `count` messages from the head of the queue and puts them
   * back (ackmode ack_requeue_true), so the queue keeps them, marked
   * redelivered. Bodies longer than truncateBytes are cut.
   */
  getMessages(
    name: string,
    count: number,
    truncateBytes: number,
  ): Promise<FetchedMessage[]> {
    return this.request(
      "POST",
      `/api/queues/${this.vhostSegment}/${enc(name)}/get`,
      {
        count,
        ackmode: "ack_requeue_true",
        encoding: "auto",
        truncate: truncateBytes,
      },
    );
  }

  async getExchange(name: string): Promise<ExchangeInfo> {
    return this.request(
      "GET",
      `/api/exchanges/${this.vhostSegment}/${enc(name)}`,
    );
  }

  async listBindings(): Promise<BindingInfo[]> {
    return this.request("GET", `/api/bindings/${this.vhostSegment}`);
  }

  async listQueueBindings(queue: string): Promise<BindingInfo[]> {
    return this.request(
      "GET",
      `/api/queues/${this.vhostSegment}/${enc(queue)}/bindings`,
    );
  }

  async bindQueue(
    exchange: string,
    queue: string,
    routingKey: string,
  ): Promise<void> {
    await this.request("POST", this.bindingPath(exchange, queue), {
      routing_key: routingKey,
      arguments: {},
    });
  }

  /** Removes every binding of the queue to the exchange with that key. */
  async unbindQueue(
    exchange: string,
    queue: string,
    routingKey: string,
  ): Promise<number> {
    const all: BindingInfo[] = await this.request(
      "GET",
      this.bindingPath(exchange, queue),
    );
    const matching = all.filter((b) => b.routing_key === routingKey);
    for (const binding of matching) {
      const path = `${this.bindingPath(exchange, queue)}/${enc(binding.properties_key)}`;
      await this.request("DELETE", path);
    }
    return matching.length;
  }

  private bindingPath(exchange: string, queue: string): string {
    return `/api/bindings/${this.vhostSegment}/e/${enc(exchange)}/q/${enc(queue)}`;
  }

  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<T> {
    try {
      return await this.limiter.run(() => this.send<T>(method, path, body));
    } catch (error) {
      // RabbitMQ returns 404 (or 400 "vhost_or_user_not_found") for every
      // object of a missing vhost, which would read as a missing queue.
      if (
        error instanceof ManagementApiError &&
        (error.status === 404 || error.status === 400) &&
        this.namesVhost(path) &&
        !(await this.vhostExists())
      ) {
        throw this.missingVhostError();
      }
      throw error;
    }
  }

  private namesVhost(path: string): boolean {
    const segments = path.split("?")[0].split("/");
    return segments[3] === this.vhostSegment;
  }

  private async send<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: {
          authorization: this.authorization,
          "content-type": "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new BrokerUnavailableError(
        `The RabbitMQ management API at ${this.baseUrl} is not reachable ` +
          `(${describeFetchError(error)}), so the request was not ` +
          `completed; retry in a few seconds. If it stays down, start ` +
          `RabbitMQ and enable the plugin with ` +
          `\`rabbitmq-plugins enable rabbitmq_management\`.`,
        { managementUrl: this.baseUrl, method, path },
        error,
      );
    }
    if (!response.ok) {
      const reason = await readReason(response);
      if (response.status >= 500) {
        throw new BrokerUnavailableError(
          `The RabbitMQ management API at ${this.baseUrl} failed with ` +
            `${response.status} on ${method} ${path.split("?")[0]}; the ` +
            `broker may be overloaded or restarting, so retry later.`,
          { brokerStatus: response.status, brokerReason: reason.slice(0, 200) },
        );
      }
      throw new ManagementApiError(method, path, response.status, reason);
    }
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/** Quotes a value for a POSIX shell command in an error message. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9._\/-]+$/.test(value)
    ? value
    : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Runs at most `max` tasks at once; the rest wait in order. */
class ConcurrencyLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active += 1;
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

/**
 * Encodes a name as one path segment, or throws UnaddressableNameError.
 * An empty name would address the collection itself. A name of "." or ".."
 * would address a parent path, because fetch and RabbitMQ 3.10's HTTP
 * server both resolve such segments, percent-encoded ("%2E") or not.
 */
function enc(name: string): string {
  if (name === "" || name === "." || name === "..") {
    throw new UnaddressableNameError(name);
  }
  return encodeURIComponent(name);
}

async function readReason(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { reason?: string; error?: string };
    return parsed.reason ?? parsed.error ?? text;
  } catch {
    return text || response.statusText;
  }
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })
    .cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
