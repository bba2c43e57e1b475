// The soak's graphql-ws subscribers: `messages` on the soak's exchanges,
// counting messages and GAP and LOST notices, and `queueStats` on an
// account of their own. A subscription that ends before the run does is
// counted and opened again.
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

import { sleep } from "./http-client";

const RESUBSCRIBE_DELAY_MS = 1_000;

const MESSAGES = `subscription ($exchange: String!) {
  messages(exchange: $exchange, routingKeyPattern: "#") {
    routingKey notice { kind lost }
  }
}`;

const QUEUE_STATS = `subscription ($account: String!) {
  queueStats(account: $account) { name messages consumers }
}`;

export interface SubscriberSummary {
  kind: "messages" | "queueStats";
  /** Exchange of a messages subscriber, account of a queueStats one. */
  target: string;
  /** Messages received, notices excluded; snapshots for queueStats. */
  received: number;
  gapNotices: number;
  lostNotices: number;
  /** Messages dropped, summed over the LOST notices. */
  lostMessages: number;
  /** Subscriptions that ended early, by error code ("complete" without one). */
  ended: Record<string, number>;
  /** graphql-ws socket closes, by close code. */
  socketCloses: Record<string, number>;
}

export class Subscriber {
  received = 0;
  gapNotices = 0;
  lostNotices = 0;
  lostMessages = 0;
  readonly ended = new Map<string, number>();
  readonly socketCloses = new Map<string, number>();
  private readonly client: Client;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private lastError: string | null = null;

  constructor(
    url: string,
    token: string,
    readonly kind: "messages" | "queueStats",
    readonly target: string,
  ) {
    this.client = createClient({
      url: url.replace(/^http/, "ws"),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => !this.stopped,
      on: {
        closed: (event) => {
          if (this.stopped) return;
          const code = String((event as { code?: number }).code ?? "none");
          increment(this.socketCloses, code);
        },
      },
    });
  }

  start(): void {
    const [query, variables] =
      this.kind === "messages"
        ? [MESSAGES, { exchange: this.target }]
        : [QUEUE_STATS, { account: this.target }];
    this.unsubscribe = this.client.subscribe<Record<string, any>>(
      { query, variables },
      {
        next: (result) => this.receive(result.data ?? {}, result.errors),
        error: (error) => this.restart(codeOf(error)),
        complete: () => this.restart(this.lastError ?? "complete"),
      },
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await this.client.dispose();
  }

  summary(): SubscriberSummary {
    return {
      kind: this.kind,
      target: this.target,
      received: this.received,
      gapNotices: this.gapNotices,
      lostNotices: this.lostNotices,
      lostMessages: this.lostMessages,
      ended: Object.fromEntries(this.ended),
      socketCloses: Object.fromEntries(this.socketCloses),
    };
  }

  private receive(data: Record<string, any>, errors?: readonly unknown[]): void {
    if (errors?.length) {
      // The gateway sends a subscription's error as a result, then completes it.
      this.lastError = codeOf(errors);
      return;
    }
    if (this.kind === "queueStats") {
      this.received += 1;
      return;
    }
    const notice = data.messages?.notice as { kind: string; lost: number } | null;
    if (!notice) this.received += 1;
    else if (notice.kind === "GAP") this.gapNotices += 1;
    else if (notice.kind === "LOST") {
      this.lostNotices += 1;
      this.lostMessages += notice.lost;
    }
  }

  private async restart(reason: string): Promise<void> {
    if (this.stopped) return;
    increment(this.ended, reason);
    this.lastError = null;
    await sleep(RESUBSCRIBE_DELAY_MS);
    if (!this.stopped) this.start();
  }
}

/** `extensions.code` of the first GraphQL error, or a description. */
function codeOf(error: unknown): string {
  const list = Array.isArray(error) ? error : [error];
  const first = list[0] as { extensions?: { code?: string }; code?: number } | undefined;
  if (first?.extensions?.code) return first.extensions.code;
  if (typeof first?.code === "number") return `close ${first.code}`;
  return "unknown";
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
