// One HTTP client of the soak: a user who manages accounts, queues and
// bindings through the gateway at a bounded rate, choosing each next
// operation from what it believes it owns. After a failed operation the
// client reads its accounts and queues back from the gateway.
import { post } from "./graphql";
import type { Recorder } from "./recorder";

/** Exchanges and topic patterns the clients bind their queues with. */
export interface BindingTargets {
  exchanges: readonly string[];
  patterns: readonly string[];
}

const MAX_ACCOUNTS = 3;
const MAX_QUEUES_PER_ACCOUNT = 4;

/** Queue name to its bindings, each "exchange routingKeyPattern". */
type Queues = Map<string, Set<string>>;

interface Operation {
  kind: string;
  weight: number;
  run: () => Promise<boolean>;
}

const QUEUES_QUERY = `query {
  queues { name account messages messagesReady consumers
           bindings { exchange routingKeyPattern } }
}`;

export class HttpClient {
  /** Account name to its queues, as this client believes them to be. */
  private readonly accounts = new Map<string, Queues>();
  private needsResync = false;
  private serial = 0;

  constructor(
    private readonly recorder: Recorder,
    private readonly url: string,
    private readonly token: string,
    /** Prefix of this client's account names, unique to the run. */
    private readonly namePrefix: string,
    private readonly targets: BindingTargets,
  ) {}

  /** Runs operations until `until` (ms since the epoch), `ratePerSecond` at most. */
  async run(until: number, ratePerSecond: number): Promise<void> {
    const intervalMs = 1000 / ratePerSecond;
    // Clients start spread over one interval, so that they do not beat in step.
    await sleep(Math.random() * intervalMs);
    while (Date.now() < until) {
      const started = Date.now();
      await this.step();
      await sleep(Math.max(0, intervalMs - (Date.now() - started)));
    }
  }

  private async step(): Promise<void> {
    if (this.needsResync) {
      this.needsResync = !(await this.resync());
      return;
    }
    const operation = pickWeighted(this.operations());
    if (!(await operation.run())) this.needsResync = true;
  }

  private operations(): Operation[] {
    const accounts = [...this.accounts.keys()];
    const queues = [...this.accounts.values()].flatMap((q) => [...q.keys()]);
    const bound = [...this.accounts.values()].flatMap((q) =>
      [...q].flatMap(([queue, set]) => [...set].map((b) => ({ queue, b }))),
    );
    const roomy = accounts.filter(
      (a) => this.accounts.get(a)!.size < MAX_QUEUES_PER_ACCOUNT,
    );
    const all: Operation[] = [
      { kind: "queues", weight: 3, run: () => this.queryQueues() },
    ];
    if (accounts.length < MAX_ACCOUNTS) {
      all.push({ kind: "createAccount", weight: 1, run: () => this.createAccount() });
    }
    if (accounts.length > 0) {
      all.push(
        { kind: "deleteAccount", weight: 0.3, run: () => this.deleteAccount(pick(accounts)) },
        { kind: "rotatePassword", weight: 0.5, run: () => this.rotatePassword(pick(accounts)) },
      );
    }
    if (roomy.length > 0) {
      all.push({ kind: "createQueue", weight: 2, run: () => this.createQueue(pick(roomy)) });
    }
    if (queues.length > 0) {
      all.push(
        { kind: "deleteQueue", weight: 0.7, run: () => this.deleteQueue(pick(queues)) },
        { kind: "purgeQueue", weight: 1, run: () => this.purgeQueue(pick(queues)) },
        { kind: "createBinding", weight: 2, run: () => this.createBinding(pick(queues)) },
      );
    }
    if (bound.length > 0) {
      const { queue, b } = pick(bound);
      all.push({ kind: "deleteBinding", weight: 1.2, run: () => this.deleteBinding(queue, b) });
    }
    return all;
  }

  private async createAccount(): Promise<boolean> {
    const username = `${this.namePrefix}-a${(this.serial += 1)}`;
    const outcome = await this.call(
      "createAccount",
      `mutation ($input: CreateAccountInput!) {
         createAccount(input: $input) { account { username } password }
       }`,
      { input: { username } },
    );
    if (outcome) this.accounts.set(username, new Map());
    return outcome;
  }

  private async deleteAccount(username: string): Promise<boolean> {
    const outcome = await this.call(
      "deleteAccount",
      `mutation ($u: String!) { deleteAccount(username: $u) }`,
      { u: username },
    );
    if (outcome) this.accounts.delete(username);
    return outcome;
  }

  private rotatePassword(username: string): Promise<boolean> {
    return this.call(
      "rotatePassword",
      `mutation ($u: String!) {
         rotateAccountPassword(username: $u) { password }
       }`,
      { u: username },
    );
  }

  private async createQueue(account: string): Promise<boolean> {
    const name = `q${(this.serial += 1)}`;
    const outcome = await this.call(
      "createQueue",
      `mutation ($input: CreateQueueInput!) { createQueue(input: $input) { name } }`,
      { input: { account, name } },
    );
    if (outcome) this.accounts.get(account)?.set(`queue/${account}/${name}`, new Set());
    return outcome;
  }

  private async deleteQueue(queue: string): Promise<boolean> {
    const outcome = await this.call(
      "deleteQueue",
      `mutation ($n: String!) { deleteQueue(name: $n) }`,
      { n: queue },
    );
    if (outcome) this.accounts.get(accountOf(queue))?.delete(queue);
    return outcome;
  }

  private purgeQueue(queue: string): Promise<boolean> {
    return this.call(
      "purgeQueue",
      `mutation ($n: String!) { purgeQueue(name: $n) { messagesPurged queue { name messages } } }`,
      { n: queue },
    );
  }

  private async createBinding(queue: string): Promise<boolean> {
    const exchange = pick(this.targets.exchanges);
    const routingKeyPattern = pick(this.targets.patterns);
    const outcome = await this.call(
      "createBinding",
      `mutation ($input: BindingInput!) {
         createBinding(input: $input) { queue exchange routingKeyPattern }
       }`,
      { input: { queue, exchange, routingKeyPattern } },
    );
    if (outcome) this.bindingsOf(queue)?.add(`${exchange} ${routingKeyPattern}`);
    return outcome;
  }

  private async deleteBinding(queue: string, binding: string): Promise<boolean> {
    const [exchange, routingKeyPattern] = binding.split(" ");
    const outcome = await this.call(
      "deleteBinding",
      `mutation ($input: BindingInput!) { deleteBinding(input: $input) }`,
      { input: { queue, exchange, routingKeyPattern } },
    );
    if (outcome) this.bindingsOf(queue)?.delete(binding);
    return outcome;
  }

  private queryQueues(): Promise<boolean> {
    return this.call("queues", QUEUES_QUERY, {});
  }

  /** Reads the client's accounts and queues back from the gateway. */
  private async resync(): Promise<boolean> {
    const accounts = await post<{ accounts: { username: string }[] }>(
      this.recorder, "accounts", this.url, this.token,
      `query { accounts { username } }`,
    );
    if (accounts.code !== null || !accounts.data) return false;
    const queues = await post<{ queues: QueueRow[] }>(
      this.recorder, "queues", this.url, this.token, QUEUES_QUERY,
    );
    if (queues.code !== null || !queues.data) return false;
    this.accounts.clear();
    for (const { username } of accounts.data.accounts) {
      this.accounts.set(username, new Map());
    }
    for (const row of queues.data.queues) {
      const bindings = row.bindings.map((b) => `${b.exchange} ${b.routingKeyPattern}`);
      this.accounts.get(row.account)?.set(row.name, new Set(bindings));
    }
    return true;
  }

  private bindingsOf(queue: string): Set<string> | undefined {
    return this.accounts.get(accountOf(queue))?.get(queue);
  }

  /** Sends one operation and returns whether it succeeded. */
  private async call(
    kind: string,
    query: string,
    variables: Record<string, unknown>,
  ): Promise<boolean> {
    const outcome = await post(this.recorder, kind, this.url, this.token, query, variables);
    return outcome.code === null;
  }
}

interface QueueRow {
  name: string;
  account: string;
  bindings: { exchange: string; routingKeyPattern: string }[];
}

/** Account of a queue/<account>/<name> queue. */
function accountOf(queue: string): string {
  return queue.split("/")[1];
}

function pick<T>(values: readonly T[]): T {
  return values[Math.floor(Math.random() * values.length)];
}

function pickWeighted(operations: Operation[]): Operation {
  const total = operations.reduce((sum, op) => sum + op.weight, 0);
  let point = Math.random() * total;
  for (const operation of operations) {
    point -= operation.weight;
    if (point <= 0) return operation;
  }
  return operations[operations.length - 1];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
