// Quotas on what one user or one account may create through the API. Each
// check runs inside the transaction that creates the row, after a row lock
// that concurrent creations also take, so they cannot pass a quota together.
import type { Prisma } from "../db";
import { QuotaExceededError } from "../errors";

/**
 * Locks the User row of each e-mail address (creating missing ones) until
 * the transaction ends, then rejects the change when one of them already
 * owns `max` accounts. `account` is the account being created or gaining
 * an owner, named in the message. A `max` of 0 turns the check off.
 */
export async function enforceAccountQuota(
  tx: Prisma.TransactionClient,
  emails: string[],
  max: number,
  account: string,
): Promise<void> {
  if (max === 0 || emails.length === 0) return;
  // Sorted, so two transactions lock shared rows in the same order and
  // cannot deadlock.
  const sorted = [...new Set(emails)].sort();
  for (const email of sorted) {
    await tx.$executeRaw`
      INSERT INTO "User" ("email") VALUES (${email})
      ON CONFLICT ("email") DO NOTHING`;
  }
  await tx.$queryRaw`
    SELECT "id" FROM "User" WHERE "email" = ANY(${sorted})
     ORDER BY "email" FOR UPDATE`;
  // Counted by a second statement, which takes its snapshot after the lock
  // is granted, so it counts accounts committed while this one waited.
  const counts = await tx.$queryRaw<{ email: string; accounts: number }[]>`
    SELECT u."email", COUNT(o."accountId")::int AS "accounts"
      FROM "User" u LEFT JOIN "AccountOwner" o ON o."userId" = u."id"
     WHERE u."email" = ANY(${sorted})
     GROUP BY u."email"`;
  for (const { email, accounts } of counts) {
    if (accounts < max) continue;
    throw new QuotaExceededError(
      `${email} already owns ${accounts} accounts, and the maximum is ` +
        `${max} (MAX_ACCOUNTS_PER_USER), so account "${account}" cannot ` +
        `be given to them; delete an account they own with deleteAccount, ` +
        `or ask an admin.`,
      { owner: email, accounts, maxAccountsPerUser: max },
    );
  }
}

/**
 * Rejects a new queue when the account already has `max` queue rows. The
 * caller must hold the account row FOR UPDATE, which serializes queue
 * creation per account. A `max` of 0 turns the check off.
 * NOTE: rows are counted, not broker queues. A queue declared over AMQP
 * counts once the guardian adopts it, and one deleted over AMQP until the
 * guardian removes its row.
 */
export async function enforceQueueQuota(
  tx: Prisma.TransactionClient,
  account: string,
  queue: string,
  max: number,
): Promise<void> {
  if (max === 0) return;
  const queues = await tx.queue.count({ where: { accountName: account } });
  if (queues < max) return;
  throw new QuotaExceededError(
    `Account "${account}" already has ${queues} queues, and the maximum ` +
      `is ${max} (MAX_QUEUES_PER_ACCOUNT), so queue "${queue}" was not ` +
      `created; delete a queue with deleteQueue, or ask an admin.`,
    { account, queue, queues, maxQueuesPerAccount: max },
  );
}
