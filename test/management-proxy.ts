// An HTTP proxy on 127.0.0.1 in front of the real RabbitMQ management API.
// It forwards every request unchanged, except those matching a rule: the
// proxy delays them, then responds with an error status or forwards them.
// Tests point a gateway's RABBITMQ_MANAGEMENT_URL at it to make one broker
// step fail for real, or to keep a request in flight.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxyRule {
  method: string;
  /** Matched against the raw request path, percent-encoding included. */
  path: RegExp;
  /** Status sent instead of forwarding; the request is forwarded when unset. */
  status?: number;
  /**
   * Forwards the request before responding with `status`, so the broker
   * makes the change but its response is lost, as when a connection drops.
   */
  forwardFirst?: boolean;
  /** Delay before the proxy responds or forwards, in milliseconds (0). */
  delayMs?: number;
  /** Number of matching requests the rule applies to (1). */
  times?: number;
}

/** A rule in place, with the requests it has matched so far. */
export class ProxyRuleHandle {
  readonly matches: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly rule: ProxyRule) {}

  get exhausted(): boolean {
    return this.matches.length >= (this.rule.times ?? 1);
  }

  /** Resolves once a request has matched the rule, or fails after timeoutMs. */
  async matched(timeoutMs = 20_000): Promise<string> {
    if (this.matches.length > 0) return this.matches[0];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no ${this.rule.method} request matched ${this.rule.path} ` +
                `within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.matches[0];
  }

  record(path: string): void {
    this.matches.push(path);
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

export class ManagementProxy {
  private rules: ProxyRuleHandle[] = [];

  private constructor(
    private readonly server: http.Server,
    private readonly target: URL,
  ) {}

  /** Starts the proxy on a free port in front of the management URL. */
  static async start(managementUrl: string): Promise<ManagementProxy> {
    const target = new URL(managementUrl);
    let proxy: ManagementProxy | undefined;
    const server = http.createServer((req, res) => proxy!.handle(req, res));
    proxy = new ManagementProxy(server, target);
    await new Promise<void>((resolve) => {
      server.listen(0, "127.0.0.1", resolve);
    });
    return proxy;
  }

  /** Management URL of the proxy, with the target's user and password. */
  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    const url = new URL(this.target.toString());
    url.hostname = "127.0.0.1";
    url.port = String(port);
    return url.toString().replace(/\/$/, "");
  }

  /** Adds a rule. When several rules match one request, the earliest wins. */
  add(rule: ProxyRule): ProxyRuleHandle {
    const handle = new ProxyRuleHandle(rule);
    this.rules.push(handle);
    return handle;
  }

  clear(): void {
    this.rules = [];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = req.url ?? "/";
    const handle = this.rules.find(
      (candidate) =>
        !candidate.exhausted &&
        candidate.rule.method === req.method &&
        candidate.rule.path.test(path),
    );
    if (!handle) {
      this.forward(req, res);
      return;
    }
    handle.record(path);
    const { status, delayMs = 0 } = handle.rule;
    let clientGone = false;
    res.once("close", () => {
      clientGone = true;
    });
    setTimeout(() => {
      // A request whose client disconnected during the delay must not
      // reach the broker afterwards.
      if (clientGone) return;
      if (status === undefined) {
        this.forward(req, res);
        return;
      }
      if (handle.rule.forwardFirst) {
        this.forwardAndDiscard(req, () => respondWith(res, status, req, path));
        return;
      }
      req.resume();
      respondWith(res, status, req, path);
    }, delayMs);
  }

  /** Sends the request to the broker and calls `done` once it responded. */
  private forwardAndDiscard(
    req: http.IncomingMessage,
    done: () => void,
  ): void {
    const upstream = http.request(
      {
        host: this.target.hostname,
        port: this.target.port || 80,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (response) => {
        response.resume();
        response.once("end", done);
      },
    );
    upstream.on("error", done);
    req.pipe(upstream);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = http.request(
      {
        host: this.target.hostname,
        port: this.target.port || 80,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(res);
      },
    );
    upstream.on("error", (error) => {
      if (res.headersSent) {
        res.destroy(error);
        return;
      }
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "bad_gateway", reason: error.message }));
    });
    req.pipe(upstream);
  }
}

function respondWith(
  res: http.ServerResponse,
  status: number,
  req: http.IncomingMessage,
  path: string,
): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      error: "injected_failure",
      reason: `the test proxy responded ${status} to ${req.method} ${path}`,
    }),
  );
}
