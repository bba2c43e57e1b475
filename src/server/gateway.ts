// Composition of the gateway: adapters, services, guardian, GraphQL over
// HTTP and graphql-ws on one port, health and metrics routes.
import http from "node:http";
import type { AddressInfo } from "node:net";

import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { ApolloServerPluginLandingPageLocalDefault } from "@apollo/server/plugin/landingPage/default";
import { expressMiddleware } from "@as-integrations/express5";
import express from "express";

import { createVerifier, type VerifyBearer } from "../auth";
import type { Config } from "../config";
import { createDatabase, type Database } from "../db";
import { ErrorCode } from "../errors";
import {
  Guardian,
  GuardianEventLog,
  GuardianLock,
  guardianSettings,
  Notifier,
  QueueHistory,
} from "../guardian";
import { AmqpLiveSource, LiveBridge } from "../live";
import { RateLimitedLog, type Logger } from "../logger";
import { AmqpConnection, ManagementClient } from "../rabbitmq";
import {
  buildGatewaySchema,
  createErrorFormatter,
  requestLimitRules,
  type GraphQLContext,
  type Services,
} from "../schema";
import {
  AccountService,
  AdminService,
  AuditLog,
  BindingService,
  MessageService,
  PolicyService,
  QueueLimitService,
  QueueService,
} from "../services";
import { StatsPoller } from "../stats";
import { prepareDatabase, waitForManagement } from "./dependencies";
import {
  authenticate,
  corsMiddleware,
  createApp,
  jsonErrorHandler,
  rateLimit,
  requestLogger,
  type RequestAuth,
} from "./http";
import { mountConsole } from "./console";
import { checkReadiness, collectMetrics } from "./probes";
import { RateLimiter } from "./rate-limit";
import { requestChecksPlugin } from "./request-checks";
import { startWebSocketServer } from "./ws";

export type GatewayState =
  | "created"
  | "starting"
  | "ready"
  | "draining"
  | "stopped";

export const GRAPHQL_PATH = "/graphql";

export class Gateway {
  readonly db: Database;
  readonly management: ManagementClient;
  readonly amqp: AmqpConnection;
  readonly stats: StatsPoller;
  readonly guardianEvents: GuardianEventLog;
  readonly live: LiveBridge;
  readonly liveSource: AmqpLiveSource;
  readonly services: Services;
  readonly guardian: Guardian | null;
  readonly history: QueueHistory;
  readonly notifier: Notifier;
  private readonly verify: VerifyBearer;
  private readonly rateLimiter: RateLimiter;
  private readonly app = createApp();
  private readonly httpServer = http.createServer(this.app);
  private databaseIsReady = false;
  private readonly abort = new AbortController();
  private apollo: ApolloServer<GraphQLContext> | null = null;
  private ws: ReturnType<typeof startWebSocketServer> | null = null;
  private databaseReady: Promise<void> | null = null;
  private currentState: GatewayState = "created";

  constructor(
    readonly config: Config,
    readonly logger: Logger,
  ) {
    this.db = createDatabase(config.databaseUrl);
    this.management = new ManagementClient(config.managementUrl, config.vhost);
    this.amqp = new AmqpConnection({ url: config.amqpUrl, logger });
    this.stats = new StatsPoller({
      management: this.management,
      intervalMs: config.guardian.intervalMs,
    maxBackoffMs: config.guardian.maxBackoffMs,
      logger,
    });
    this.guardianEvents = new GuardianEventLog(this.db, logger);
    this.history = new QueueHistory(
      this.db,
      config.guardian.historyRetentionDays,
    );
    this.notifier = new Notifier(
      config.guardian.notifications,
      logger.child({ component: "notifier" }),
    );
    this.liveSource = new AmqpLiveSource({
      connection: this.amqp,
      gatewayAccount: config.gatewayAccount,
      prefetch: config.live.prefetch,
      logger,
    });
    this.live = new LiveBridge({
      source: this.liveSource,
      bufferSize: config.live.bufferSize,
      maxBehindMs: config.live.maxBehindMs,
      logger,
    });
    this.services = this.createServices();
    this.guardian = config.guardian.enabled ? this.createGuardian() : null;
    this.verify = this.withStoredAdmins(
      createVerifier(config.jwt, config.adminEmails),
    );
    this.rateLimiter = new RateLimiter(
      config.limits.rateLimitBurst,
      config.limits.rateLimitPerSecond,
    );
  }

  /**
   * Adds the admins granted through the API to those of ADMIN_EMAILS. A
   * socket keeps the admin flag it had when it connected.
   */
  private withStoredAdmins(verify: VerifyBearer): VerifyBearer {
    const errors = new RateLimitedLog(this.logger);
    return async (authorization) => {
      const viewer = await verify(authorization);
      if (viewer.isAdmin) return viewer;
      try {
        const isAdmin = await this.services.admins.isStoredAdmin(viewer.email);
        errors.clear("admin flag");
        return { ...viewer, isAdmin };
      } catch (error) {
        errors.error(
          "admin flag",
          { err: error, viewer: viewer.email },
          "reading the admin flag failed; treating the caller as a non-admin",
        );
        return viewer;
      }
    };
  }

  get state(): GatewayState {
    return this.currentState;
  }

  /** Address the gateway listens on, once started. */
  get url(): string {
    const address = this.httpServer.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}${GRAPHQL_PATH}`;
  }

  /**
   * Listens at once, so /healthz and /readyz respond while the database and
   * the broker are still coming up; those are retried in the background.
   */
  async start(): Promise<void> {
    this.currentState = "starting";
    this.warnAboutSecret();

    const schema = await buildGatewaySchema();
    this.ws = startWebSocketServer({
      httpServer: this.httpServer,
      path: GRAPHQL_PATH,
      schema,
      verify: this.verify,
      services: this.services,
      logger: this.logger,
      production: this.config.production,
      allowAnonymous: this.config.allowAnonymousSubscriptions,
      limits: this.config.limits,
      introspection: this.config.introspection,
      rateLimiter: this.rateLimiter,
    });
    this.apollo = this.createApollo(schema);
    await this.apollo.start();
    this.mountRoutes(this.app);
    await this.listen();

    await this.amqp.start();
    void waitForManagement(
      this.management,
      this.logger,
      this.config.retryIntervalMs,
      this.abort.signal,
    );
    this.databaseReady = this.startDatabaseDependents();
    this.logger.info(
      { url: this.url, console: this.url.slice(0, -GRAPHQL_PATH.length) + "/" },
      "gateway listening",
    );
    // Only the state and its log line depend on this; tests await ready().
    void this.ready(2 ** 31 - 1).catch(() => undefined);
  }

  private warnAboutSecret(): void {
    const { secret, usesDevelopmentSecret } = this.config.jwt;
    if (usesDevelopmentSecret) {
      this.logger.warn(
        "JWT_SECRET is not set: tokens are checked with the development " +
          "secret, which `npm run token` also uses; set JWT_SECRET or " +
          "JWT_JWKS_URL for real use",
      );
    } else if (secret && secret.length < 32) {
      this.logger.warn(
        { length: secret.length },
        "JWT_SECRET is shorter than 32 characters, so tokens are easier " +
          "to forge; use a long random value",
      );
    }
  }

  /** Resolves when the database is migrated and AMQP is connected. */
  async ready(timeoutMs = 60_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`gateway not ready after ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
    });
    try {
      await Promise.race([
        Promise.all([
          this.databaseReady,
          this.amqp.waitForConnection(timeoutMs),
        ]),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
    if (this.currentState === "starting") {
      this.currentState = "ready";
      this.logger.info("gateway ready");
    }
  }

  /**
   * Stops accepting connections, closes every graphql-ws socket with 1001,
   * lets HTTP requests in flight finish, then stops the guardian and the
   * stats poller and closes the live queues, AMQP and the database pool.
   * HTTP connections still open after config.shutdownGraceMs are cut.
   */
  async stop(): Promise<void> {
    if (this.currentState === "stopped" || this.currentState === "draining") {
      return;
    }
    this.currentState = "draining";
    this.logger.info(
      { graceMs: this.config.shutdownGraceMs },
      "gateway draining",
    );
    this.abort.abort();
    await this.apollo?.stop();
    await this.guardian?.stop();
    this.notifier.close();
    await this.stats.stop();
    await this.live.close();
    await this.liveSource.close();
    await this.guardianEvents.close();
    await this.amqp.close();
    await this.db.$disconnect();
    this.currentState = "stopped";
    this.logger.info("gateway stopped");
  }

  private createServices(): Services {
    const deps = {
      db: this.db,
      management: this.management,
      stats: this.stats,
      logger: this.logger,
      reservedAccounts: this.config.reservedAccounts,
      gatewayAccount: this.config.gatewayAccount,
      quotas: {
        maxAccountsPerUser: this.config.limits.maxAccountsPerUser,
        maxQueuesPerAccount: this.config.limits.maxQueuesPerAccount,
      },
    };
    const queues = new QueueService(deps);
    return {
      accounts: new AccountService(deps),
      queues,
      bindings: new BindingService(deps, queues, this.amqp),
      policies: new PolicyService(deps, queues, this.config.guardian),
      queueLimits: new QueueLimitService(deps),
      history: this.history,
      messages: new MessageService(deps, queues, this.amqp),
      admins: new AdminService(deps, this.config.adminEmails),
      audit: new AuditLog(deps),
      guardianEvents: this.guardianEvents,
      live: this.live,
      stats: this.stats,
    };
  }

  private createGuardian(): Guardian {
    return new Guardian({
      ...guardianSettings(this.config),
      db: this.db,
      management: this.management,
      stats: this.stats,
      events: this.guardianEvents,
      logger: this.logger.child({ component: "guardian" }),
      lock: new GuardianLock(this.config.databaseUrl, this.logger),
      notifier: this.notifier,
      history: this.history,
    });
  }

  private async startDatabaseDependents(): Promise<void> {
    await prepareDatabase(
      this.config.databaseUrl,
      this.logger,
      this.config.retryIntervalMs,
      this.abort.signal,
    );
    if (this.abort.signal.aborted) return;
    await this.guardianEvents.listen(this.config.databaseUrl).catch((error) => {
      this.logger.warn(
        { err: error },
        "listening for guardian events failed; this gateway publishes " +
          "only its own guardian's events",
      );
    });
    this.databaseIsReady = true;
    this.guardian?.start();
    this.stats.start();
  }

  private createApollo(schema: Awaited<ReturnType<typeof buildGatewaySchema>>) {
    const ws = this.ws!;
    return new ApolloServer<GraphQLContext>({
      schema,
      logger: this.logger,
      introspection: this.config.introspection,
      validationRules: requestLimitRules(this.config.limits),
      // The gateway handles SIGINT and SIGTERM itself (see main.ts).
      stopOnTerminationSignals: false,
      formatError: createErrorFormatter(this.logger, this.config.production),
      includeStacktraceInErrorResponses: this.config.includeStacktraceInErrors,
      plugins: [
        // Sandbox is served from Apollo's CDN in the browser that opens it.
        this.config.landingPage
          ? ApolloServerPluginLandingPageLocalDefault({ embed: true })
          : ApolloServerPluginLandingPageDisabled(),
        ApolloServerPluginDrainHttpServer({
          httpServer: this.httpServer,
          stopGracePeriodMillis: this.config.shutdownGraceMs,
        }),
        requestChecksPlugin(this.rateLimiter, this.logger),
        {
          async serverWillStart() {
            return {
              async drainServer() {
                await ws.dispose();
              },
            };
          },
        },
      ],
    });
  }

  private mountRoutes(app: express.Express): void {
    app.use(requestLogger(this.logger));
    app.use(corsMiddleware(this.config.corsOrigins));
    app.get("/healthz", (_req, res) => {
      res.json({ status: "ok", state: this.currentState });
    });
    app.get("/readyz", async (_req, res) => {
      const report = await checkReadiness(this);
      res.status(report.ready ? 200 : 503).json(report);
    });
    app.get("/metrics", (_req, res) => {
      res.type("text/plain; version=0.0.4").send(collectMetrics(this, this.ws!));
    });
    app.use(GRAPHQL_PATH, (_req, res, next) => {
      if (this.databaseIsReady || _req.method === "GET") return next();
      res.status(503).json({
        errors: [
          {
            message:
              "The gateway's database is not ready yet; see the gateway's " +
              "log or /readyz for what is missing, and retry.",
            extensions: { code: ErrorCode.DATABASE_UNAVAILABLE },
          },
        ],
      });
    });
    app.use(
      GRAPHQL_PATH,
      authenticate(this.verify),
      rateLimit(this.rateLimiter, this.logger),
      express.json({ limit: this.config.limits.maxBodyBytes }),
      expressMiddleware(this.apollo!, {
        context: async ({ res }) => this.httpContext(res),
      }),
    );
    mountConsole(app, this.config.consoleDir);
    app.use(jsonErrorHandler(this.logger, this.config.limits.maxBodyBytes));
  }

  private async httpContext(res: express.Response): Promise<GraphQLContext> {
    const logger = (res.locals.logger as Logger | undefined) ?? this.logger;
    const auth = res.locals.auth as RequestAuth;
    return {
      viewer: auth.viewer,
      authError: auth.error,
      services: this.services,
      logger,
    };
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.httpServer.once("error", reject);
      this.httpServer.listen(this.config.port, this.config.host, () => {
        this.httpServer.off("error", reject);
        resolve();
      });
    });
  }
}

