// Bindings of a Pulse queue to a topic exchange, kept on the broker and in
// the database.
import type { Viewer } from "../auth";
import {
  BadInputError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
} from "../errors";
import {
  MAX_BINDING_PATTERN_BYTES,
  validateBindingPattern,
} from "../live/topic";
import { isNotFound } from "../rabbitmq/management";
import {
  authorizeAccount,
  logCompensationFailure,
  type AmqpQueueClient,
  type ServiceDeps,
} from "./context";
import {
  checkNameLength,
  requireQueueAccount,
  validateExchangeName,
} from "./pulse-names";
import {
  toBindingRecords,
  type BindingRecord,
  type QueueService,
} from "./queues";

export interface BindingInput {
  queue: string;
  exchange: string;
  routingKeyPattern: string;
}

/** An exchange and topic pattern, without the queue. */
export interface BindingTarget {
  exchange: string;
  routingKeyPattern: string;
}

/**
 * Bindings a queue may have: replaceBindings sets at most this many, and
 * createBinding and updateBinding refuse to go beyond it.
 */
export const MAX_BINDINGS_PER_QUEUE = 100;

function tooManyBindings(queue: string, count: number): BadInputError {
  return new BadInputError(
    `Queue "${queue}" already has ${count} bindings, and a queue may have ` +
      `at most ${MAX_BINDINGS_PER_QUEUE}; delete one with deleteBinding, or ` +
      `use "#" or "*" in patterns to match more routing keys with fewer ` +
      `bindings.`,
    { queue, bindings: count, maxBindingsPerQueue: MAX_BINDINGS_PER_QUEUE },
  );
}

export class BindingService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly queues: QueueService,
    private readonly amqp: AmqpQueueClient,
  ) {}

  /**
   * Binds the queue on the broker, then records the binding. When either
   * step fails, a binding that did not exist before is removed again.
   */
  async create(viewer: Viewer, input: BindingInput): Promise<BindingRecord> {
    const { queue, exchange, routingKeyPattern } = input;
    const target = { exchange, routingKeyPattern };
    const problem = newPatternProblem(routingKeyPattern);
    if (problem) throw new BadInputError(problem, { routingKeyPattern });
    const account = await this.authorize(viewer, input);
    const info = await this.queues.fetchQueue(queue);
    await this.requireExchange(exchange);
    const before = toBindingRecords(
      await this.deps.management.listQueueBindings(queue),
    );
    const existed = containsTarget(before, target);
    if (!existed && before.length >= MAX_BINDINGS_PER_QUEUE) {
      throw tooManyBindings(queue, before.length);
    }

    try {
      // A failed response does not prove that the broker bound nothing.
      await this.deps.management.bindQueue(exchange, queue, routingKeyPattern);
      if (!existed) await this.checkBindingCount(queue, 0);
      await this.recordBindings(account, queue, info.durable, [target]);
    } catch (error) {
      if (!existed) {
        await this.deps.management
          .unbindQueue(exchange, queue, routingKeyPattern)
          .catch((undoError) => {
            logCompensationFailure(this.deps.logger, input, undoError);
          });
      }
      throw error;
    }
    this.deps.logger.info({ ...input, by: viewer.email }, "binding created");
    return { queue, exchange, routingKeyPattern };
  }

  /**
   * Removes the binding row and the broker binding in one transaction, so
   * a broker failure keeps the row. When the commit fails after the
   * unbind, the broker binding is made again. Any pattern is accepted,
   * including those createBinding rejects, because bindings made over AMQP
   * may have them.
   */
  async delete(viewer: Viewer, input: BindingInput): Promise<boolean> {
    const { queue, exchange, routingKeyPattern } = input;
    await this.authorize(viewer, input);
    await this.queues.fetchQueue(queue);
    const removed = await this.removeOne(queue, {
      exchange,
      routingKeyPattern,
    });
    if (removed === 0) throw bindingNotFound(input);
    this.deps.logger.info({ ...input, by: viewer.email }, "binding deleted");
    return true;
  }

  /**
   * Moves one binding of the queue to another exchange or pattern. The new
   * binding is made and recorded before the old one is removed. A failure
   * at any step removes the new binding again and leaves the old one.
   */
  async update(
    viewer: Viewer,
    input: BindingInput,
    to: BindingTarget,
  ): Promise<BindingRecord> {
    const { queue } = input;
    const account = await this.authorize(viewer, input);
    const target = {
      exchange: to.exchange,
      routingKeyPattern: to.routingKeyPattern,
    };
    validateTarget(target);
    const info = await this.queues.fetchQueue(queue);

    const old = {
      exchange: input.exchange,
      routingKeyPattern: input.routingKeyPattern,
    };
    const current = toBindingRecords(
      await this.deps.management.listQueueBindings(queue),
    );
    if (!containsTarget(current, old)) throw bindingNotFound(input);
    if (containsTarget([old], target)) {
      throw new BadInputError(
        `The new binding of queue "${queue}" is the same as the old one; ` +
          `change the exchange or the pattern.`,
        { ...input },
      );
    }
    if (containsTarget(current, target)) {
      throw new ConflictError(
        `Queue "${queue}" is already bound to "${target.exchange}" with ` +
          `pattern "${target.routingKeyPattern}"; delete the old binding ` +
          `with deleteBinding instead.`,
        { queue, ...target },
      );
    }
    // The move keeps the count, so only a queue already over the limit
    // (through bindings made over AMQP) is refused.
    if (current.length > MAX_BINDINGS_PER_QUEUE) {
      throw tooManyBindings(queue, current.length);
    }
    await this.requireExchange(target.exchange);

    // The old binding is still there while the new one is checked.
    await this.addAll(queue, [target], async () => {
      await this.checkBindingCount(queue, 1);
      await this.recordBindings(account, queue, info.durable, [target]);
    });
    try {
      await this.removeOne(queue, old);
    } catch (error) {
      await this.removeOne(queue, target).catch((undoError) => {
        logCompensationFailure(
          this.deps.logger,
          { queue, ...target },
          undoError,
        );
      });
      throw error;
    }
    this.deps.logger.info(
      { queue, from: old, to: target, by: viewer.email },
      "binding updated",
    );
    return { queue, ...target };
  }

  /**
   * Makes the queue's bindings exactly `targets`. New bindings are made
   * before old ones are removed, so a message that matches both the old
   * and the new set is routed throughout. A failure while adding removes
   * what this call added. A failure while removing leaves some old
   * bindings beside the new ones.
   */
  async replace(
    viewer: Viewer,
    queue: string,
    targets: BindingTarget[],
  ): Promise<BindingRecord[]> {
    if (targets.length > MAX_BINDINGS_PER_QUEUE) {
      throw new BadInputError(
        `Too many bindings (${targets.length}): a queue may have at most ` +
          `${MAX_BINDINGS_PER_QUEUE}; use "#" or "*" in patterns to match ` +
          `more routing keys with fewer bindings.`,
        { queue, bindings: targets.length },
      );
    }
    const desired = uniqueTargets(targets);
    const account = requireQueueAccount(queue);
    for (const target of desired) validateTarget(target);
    await authorizeAccount(this.deps, viewer, account);
    const info = await this.queues.fetchQueue(queue);

    const current = uniqueTargets(
      toBindingRecords(await this.deps.management.listQueueBindings(queue)),
    );
    const added = desired.filter((t) => !containsTarget(current, t));
    const removed = current.filter((t) => !containsTarget(desired, t));
    for (const target of added) await this.requireExchange(target.exchange);

    // Every desired binding gets its row, including those that were on the
    // broker already, declared over AMQP.
    await this.addAll(queue, added, () =>
      this.recordBindings(account, queue, info.durable, desired),
    );
    await this.removeAll(queue, removed);
    this.deps.logger.info(
      { queue, added, removed, by: viewer.email },
      "bindings replaced",
    );
    const bindings = await this.deps.management.listQueueBindings(queue);
    return toBindingRecords(bindings);
  }

  /**
   * Throws when the queue has more than MAX_BINDINGS_PER_QUEUE bindings
   * plus `leaving`, the bindings about to be removed. Called after a bind,
   * so of several calls that bind at once, the last one to bind sees every
   * other's binding: the count can pass the limit only until the callers
   * that find it too high remove their bindings again.
   */
  private async checkBindingCount(
    queue: string,
    leaving: number,
  ): Promise<void> {
    const bindings = toBindingRecords(
      await this.deps.management.listQueueBindings(queue),
    );
    const count = bindings.length - leaving;
    if (count > MAX_BINDINGS_PER_QUEUE) throw tooManyBindings(queue, count - 1);
  }

  /**
   * Binds every target, then runs `record`. When a bind or `record` fails,
   * every target is unbound again before the error is thrown, so the
   * targets must not be bound before the call.
   */
  private async addAll(
    queue: string,
    targets: BindingTarget[],
    record: () => Promise<void>,
  ): Promise<void> {
    const bound: BindingTarget[] = [];
    try {
      for (const target of targets) {
        // Added first, because a failed response does not prove that the
        // broker bound nothing. Unbinding a missing binding does nothing.
        bound.push(target);
        await this.deps.management.bindQueue(
          target.exchange,
          queue,
          target.routingKeyPattern,
        );
      }
      await record();
    } catch (error) {
      for (const target of bound) {
        await this.deps.management
          .unbindQueue(target.exchange, queue, target.routingKeyPattern)
          .catch(this.logUndoFailure(queue, target));
      }
      throw error;
    }
  }

  /** Returns a handler that logs a failed undo of one binding change. */
  private logUndoFailure(queue: string, target: BindingTarget) {
    return (undoError: unknown) =>
      logCompensationFailure(this.deps.logger, { queue, ...target }, undoError);
  }

  /** Unbinds each target and deletes its row, one transaction per target. */
  private async removeAll(
    queue: string,
    targets: BindingTarget[],
  ): Promise<void> {
    for (const target of targets) await this.removeOne(queue, target);
  }

  /**
   * Deletes the target's row and unbinds it in one transaction, and returns
   * the rows and broker bindings removed. When the unbind or the commit
   * fails, a binding that existed is bound again, so the row and the
   * broker still agree.
   */
  private async removeOne(
    queue: string,
    target: BindingTarget,
  ): Promise<number> {
    const existed = containsTarget(
      toBindingRecords(await this.deps.management.listQueueBindings(queue)),
      target,
    );
    try {
      return await this.deps.db.$transaction(async (tx) => {
        const rows = await tx.binding.deleteMany({
          where: { queue: { name: queue }, ...target },
        });
        const unbound = await this.unbind(queue, target);
        return rows.count + unbound;
      });
    } catch (error) {
      if (existed) {
        await this.deps.management
          .bindQueue(target.exchange, queue, target.routingKeyPattern)
          .catch(this.logUndoFailure(queue, target));
      }
      throw error;
    }
  }

  /**
   * Stores the queue's row and a row per target in one transaction, so a
   * failure stores none of them.
   */
  private async recordBindings(
    account: string,
    queue: string,
    durable: boolean,
    targets: BindingTarget[],
  ): Promise<void> {
    // Concurrent upserts of one row can both try the insert, and the loser
    // fails with P2002 (unique constraint). Its retry then finds the row.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.recordBindingsOnce(account, queue, durable, targets);
        return;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code !== "P2002" || attempt === 3) throw error;
      }
    }
  }

  private async recordBindingsOnce(
    account: string,
    queue: string,
    durable: boolean,
    targets: BindingTarget[],
  ): Promise<void> {
    await this.deps.db.$transaction(async (tx) => {
      const known = await tx.account.findUnique({
        where: { username: account },
        select: { id: true },
      });
      const row = await tx.queue.upsert({
        where: { name: queue },
        create: {
          name: queue,
          accountName: account,
          accountId: known?.id,
          durable,
        },
        update: {},
      });
      for (const target of targets) {
        await tx.binding.upsert({
          where: {
            queueId_exchange_routingKeyPattern: { queueId: row.id, ...target },
          },
          create: { queueId: row.id, ...target },
          update: {},
        });
      }
    });
  }

  /**
   * Checks the names of a binding that may already exist and the viewer's
   * right to manage its queue. The pattern is only checked for length:
   * RabbitMQ accepts patterns over AMQP that createBinding rejects, and
   * such bindings must still be removable.
   */
  private async authorize(viewer: Viewer, input: BindingInput) {
    const account = requireQueueAccount(input.queue);
    validateExchangeName(input.exchange);
    const bytes = Buffer.byteLength(input.routingKeyPattern, "utf8");
    if (bytes > MAX_BINDING_PATTERN_BYTES) {
      throw new BadInputError(
        `Binding pattern is ${bytes} bytes of UTF-8; the maximum is ` +
          `${MAX_BINDING_PATTERN_BYTES} bytes, so no such binding exists.`,
        { queue: input.queue, exchange: input.exchange },
      );
    }
    await authorizeAccount(this.deps, viewer, account);
    return account;
  }

  /**
   * Removes the binding from the broker and returns the number removed.
   * The management API names a binding by its pattern in the URL path and
   * cannot address "." or "..", so those are unbound over AMQP.
   * NOTE: over AMQP only the binding without arguments is removed.
   */
  private async unbind(queue: string, target: BindingTarget): Promise<number> {
    const { exchange, routingKeyPattern } = target;
    if (unaddressablePattern(routingKeyPattern) === null) {
      return this.deps.management.unbindQueue(exchange, queue, routingKeyPattern);
    }
    const bindings = toBindingRecords(
      await this.deps.management.listQueueBindings(queue),
    );
    if (!containsTarget(bindings, target)) return 0;
    try {
      await this.amqp.unbindQueue(queue, exchange, routingKeyPattern);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 403) throw error;
      throw new ForbiddenError(
        `RabbitMQ rejected the gateway's own account ` +
          `"${this.deps.gatewayAccount}" when it tried to unbind queue ` +
          `"${queue}" from "${exchange}" over AMQP. A binding with pattern ` +
          `"${routingKeyPattern}" can only be removed over AMQP; give that ` +
          `account write permission on the queue and read permission on ` +
          `the exchange, or unbind it over AMQP as the queue's account.`,
        { queue, ...target },
      );
    }
    return 1;
  }

  private async requireExchange(exchange: string): Promise<void> {
    checkNameLength("Exchange", exchange);
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

function bindingNotFound(input: BindingInput): NotFoundError {
  return new NotFoundError(
    `Queue "${input.queue}" has no binding to "${input.exchange}" with ` +
      `pattern "${input.routingKeyPattern}"; list its bindings with the ` +
      `queue query.`,
    { ...input },
  );
}

/**
 * Checks a binding the gateway is about to make: createBinding, the `to` of
 * updateBinding and every target of replaceBindings share these rules.
 */
function validateTarget(target: BindingTarget): void {
  validateExchangeName(target.exchange);
  const problem = newPatternProblem(target.routingKeyPattern);
  if (problem) {
    throw new BadInputError(problem, {
      exchange: target.exchange,
      routingKeyPattern: target.routingKeyPattern,
    });
  }
}

/** Returns why the gateway must not bind with `pattern`, or null. */
function newPatternProblem(pattern: string): string | null {
  return validateBindingPattern(pattern) ?? unaddressablePattern(pattern);
}

function uniqueTargets(targets: BindingTarget[]): BindingTarget[] {
  const unique: BindingTarget[] = [];
  for (const { exchange, routingKeyPattern } of targets) {
    const target = { exchange, routingKeyPattern };
    if (!containsTarget(unique, target)) unique.push(target);
  }
  return unique;
}

function containsTarget(list: BindingTarget[], target: BindingTarget): boolean {
  return list.some(
    (item) =>
      item.exchange === target.exchange &&
      item.routingKeyPattern === target.routingKeyPattern,
  );
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
