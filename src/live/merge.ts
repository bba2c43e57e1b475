// Several live subscriptions read as one stream, with an optional payload
// filter applied.
import type { BindingKey, LiveMessage, LiveSubscription } from "./bridge";
import type { PayloadPredicate } from "./filter";

/** A message whose binding the bridge has set. */
export interface TaggedMessage extends LiveMessage {
  binding: BindingKey;
}

type Pending = Promise<{ index: number; result: IteratorResult<LiveMessage> }>;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * Reads from every subscription at once, keeping one read outstanding on
 * each, so nothing is buffered here beyond what the subscriptions hold.
 * Notices pass the filter; a failure in one subscription ends them all.
 */
export function mergeSubscriptions(
  subscriptions: LiveSubscription[],
  keys: BindingKey[],
  filter: PayloadPredicate | null,
): AsyncIterableIterator<TaggedMessage> {
  const pending = new Map<number, Pending>();
  const read = (index: number): Pending => {
    const reading = subscriptions[index]
      .next()
      .then((result) => ({ index, result }));
    // A failure is raised by the next call to next(); this only keeps Node
    // from reporting it as unhandled in the meantime.
    reading.catch(() => undefined);
    return reading;
  };
  subscriptions.forEach((_, index) => pending.set(index, read(index)));

  const closeAll = async () => {
    pending.clear();
    await Promise.all(subscriptions.map((subscription) => subscription.return()));
  };

  const iterator: AsyncIterableIterator<TaggedMessage> = {
    async next(): Promise<IteratorResult<TaggedMessage>> {
      while (pending.size > 0) {
        let settled;
        try {
          settled = await Promise.race(pending.values());
        } catch (error) {
          await closeAll();
          throw error;
        }
        const { index, result } = settled;
        if (!pending.has(index)) continue;
        if (result.done) {
          pending.delete(index);
          continue;
        }
        pending.set(index, read(index));
        const message = result.value;
        if (filter && !message.notice && !filter(message.payload)) continue;
        message.binding ??= keys[index];
        return { done: false, value: message as TaggedMessage };
      }
      return DONE;
    },
    async return(): Promise<IteratorResult<TaggedMessage>> {
      await closeAll();
      return DONE;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
