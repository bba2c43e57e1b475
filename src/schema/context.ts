import type { Viewer } from "../auth";
import { UnauthenticatedError } from "../errors";
import type { GuardianEventLog, QueueHistory } from "../guardian";
import type { LiveBridge } from "../live";
import type { Logger } from "../logger";
import type { StatsPoller } from "../stats";
import type {
  AccountService,
  AdminService,
  AuditLog,
  BindingService,
  PolicyService,
  QueueLimitService,
  MessageService,
  QueueService,
} from "../services";

export interface Services {
  accounts: AccountService;
  queues: QueueService;
  bindings: BindingService;
  policies: PolicyService;
  queueLimits: QueueLimitService;
  history: QueueHistory;
  messages: MessageService;
  admins: AdminService;
  audit: AuditLog;
  guardianEvents: GuardianEventLog;
  live: LiveBridge;
  stats: StatsPoller;
}

/** Per-operation context, for HTTP and graphql-ws alike. */
export interface GraphQLContext {
  viewer: Viewer | null;
  /** Why there is no viewer: a missing, expired or invalid token. */
  authError: Error | null;
  services: Services;
  logger: Logger;
  /** True when ALLOW_ANONYMOUS_SUBSCRIPTIONS lets `messages` skip the token. */
  allowAnonymous?: boolean;
  /**
   * Closes the operation's WebSocket, keeping `action` when the reason is
   * cut to fit a close frame; absent over HTTP.
   */
  closeSocket?: (code: number, reason: string, action: string) => void;
}

/** Returns the signed-in viewer or throws UNAUTHENTICATED. */
export function requireViewer(context: GraphQLContext): Viewer {
  if (context.viewer) return context.viewer;
  throw (
    context.authError ??
    new UnauthenticatedError("Sign in: send `Authorization: Bearer <jwt>`.")
  );
}
