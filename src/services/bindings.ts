// Bindings of a Pulse queue to a topic exchange, kept on the broker and in
// the database.
import type { Viewer } from "../auth";
import { BadInputError, NotFoundError } from "../errors";
import { validateBindingPattern } from "../live/topic";
import { isNotFound } from "../rabbitmq/management";
import {
  authorizeAccount,
  logCompensationFailure,
  type ServiceDeps,
} from "./context";
import { requireQueueAccount, validateExchangeName } from "./pulse-names";
import type { BindingRecord, QueueService } from "./queues";

export interface BindingInput {
  queue: string;
  exchange: string;
  routingKeyPattern: string;
}

export class BindingService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly queues: QueueService,
  ) {}

  /** Binds the queue on the broker, then records the binding. */
  async create(viewer: Viewer, input: BindingInput): Promise<BindingRecord> {
    const { queue, exchange, routingKeyPattern } = input;
    const account = await this.authorize(viewer, input);
    const info = await this.queues.fetchQueue(queue);
    await this.requireExchange(exchange);

    await this.deps.management.bindQueue(exchange, queue, routingKeyPattern);
    try {
      const known = await this.deps.db.account.findUnique({
        where: { username: account },
        select: { id: true },
      });
      const row = await this.deps.db.queue.upsert({
        where: { name: queue },
        create: {
          name: queue,
          accountName: account,
          accountId: known?.id,
          durable: info.durable,
        },
        update: {},
      });
      await this.deps.db.binding.upsert({
        where: {
          queueId_exchange_routingKeyPattern: {
            queueId: row.id,
            exchange,
            routingKeyPattern,
          },
        },
        create: { queueId: row.id, exchange, routingKeyPattern },
        update: {},
      });
    } catch (error) {
      await this.deps.management
        .unbindQueue(exchange, queue, routingKeyPattern)
        .catch((undoError) => {
          logCompensationFailure(this.deps.logger, input, undoError);
        });
      throw error;
    }
    this.deps.logger.info({ ...input, by: viewer.email }, "binding created");
    return { queue, exchange, routingKeyPattern };
  }

  /**
   * Removes the binding row and the broker binding in one transaction, so
   * a broker failure keeps the row.
   */
  async delete(viewer: Viewer, input: BindingInput): Promise<boolean> {
    const { queue, exchange, routingKeyPattern } = input;
    await this.authorize(viewer, input);
    await this.queues.fetchQueue(queue);
    const removed = await this.deps.db.$transaction(async (tx) => {
      const rows = await tx.binding.deleteMany({
        where: { queue: { name: queue }, exchange, routingKeyPattern },
      });
      const unbound = await this.deps.management.unbindQueue(
        exchange,
        queue,
        routingKeyPattern,
      );
      return rows.count + unbound;
    });
    if (removed === 0) {
      throw new NotFoundError(
        `Queue "${queue}" has no binding to "${exchange}" with pattern ` +
          `"${routingKeyPattern}"; list its bindings with the queue query.`,
        { ...input },
      );
    }
    this.deps.logger.info({ ...input, by: viewer.email }, "binding deleted");
    return true;
  }

  private async authorize(viewer: Viewer, input: BindingInput) {
    const account = requireQueueAccount(input.queue);
    validateExchangeName(input.exchange);
    const problem =
      validateBindingPattern(input.routingKeyPattern) ??
      unaddressablePattern(input.routingKeyPattern);
    if (problem) {
      throw new BadInputError(problem, {
        routingKeyPattern: input.routingKeyPattern,
      });
    }
    await authorizeAccount(this.deps, viewer, account);
    return account;
  }

  private async requireExchange(exchange: string): Promise<void> {
    try {
      await this.deps.management.getExchange(exchange);
    } catch (error) {
      if (isNotFound(error)) {
        throw new NotFoundError(
          `Exchange "${exchange}" not found on the broker; check the name ` +
            `(Pulse exchanges look like "exchange/<owner>/<name>").`,
          { exchange },
        );
      }
      throw error;
    }
  }
}

/**
 * Rejects the patterns "." and "..". RabbitMQ accepts them, but the
 * management API names a binding by its pattern in the URL path, and
 * resolves "." and ".." there as directories, so such a binding could be
 * created and never deleted through the API.
 */
function unaddressablePattern(pattern: string): string | null {
  if (pattern !== "." && pattern !== "..") return null;
  return (
    `Binding pattern "${pattern}" cannot be managed through RabbitMQ's ` +
    `management API, which reads "." and ".." in a URL path as ` +
    `directories; bind with a pattern such as "${pattern}#" or "#" instead.`
  );
}
