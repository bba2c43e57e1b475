// The soak's report: one JSON document, and a summary of it on stdout.
import { writeFileSync } from "node:fs";

import type { GatewayExit, GatewayMemory } from "./gateway-process";
import type { PublisherSummary } from "./publisher";
import type { KindSummary } from "./recorder";
import type { StateDiff } from "./state-diff";
import type { SubscriberSummary } from "./subscribers";

export interface RestartRecord {
  atSecond: number;
  durationMs: number;
  error?: string;
}

export interface SoakReport {
  startedAt: string;
  settings: Record<string, number>;
  loadSeconds: number;
  restarts: RestartRecord[];
  operations: Record<string, KindSummary>;
  errorsByCode: Record<string, number>;
  /** One message per "kind code", to tell causes apart. */
  errorExamples: Record<string, string>;
  memory: {
    start: GatewayMemory | null;
    peak: GatewayMemory | null;
    end: GatewayMemory | null;
  };
  publisher: PublisherSummary;
  subscribers: SubscriberSummary[];
  gateway: {
    crashed: GatewayExit | null;
    unhandledRejections: string[];
    errorLogs: Record<string, number>;
    /** The error of the first line of each message. */
    errorLogExamples: Record<string, string>;
    shutdown: GatewayExit | null;
  };
  /** The guardian's events during the run, by kind; null if unread. */
  guardianEvents: Record<string, number> | null;
  stateDiff: StateDiff | null;
  stateDiffError?: string;
  passed: boolean;
}

export function writeReport(report: SoakReport, file: string): void {
  writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
}

export function printReport(report: SoakReport, file: string): void {
  const lines: string[] = [];
  lines.push(
    `Soak of ${report.loadSeconds} s from ${report.startedAt}, ` +
      `${report.restarts.length} broker restart(s)`,
  );
  for (const restart of report.restarts) {
    lines.push(
      `  restart at ${restart.atSecond} s took ${restart.durationMs} ms` +
        (restart.error ? `, failed: ${restart.error}` : ""),
    );
  }
  lines.push("", "operation            count   ok      p50 ms  p99 ms  errors");
  for (const [kind, s] of Object.entries(report.operations)) {
    const errors = Object.entries(s.errors).map(([c, n]) => `${c}=${n}`).join(" ");
    lines.push(
      `${kind.padEnd(20)} ${pad(s.count, 7)} ${pad(s.succeeded, 7)} ` +
        `${pad(s.p50Ms, 7)} ${pad(s.p99Ms, 7)} ${errors}`,
    );
  }
  lines.push("", `errors by code: ${JSON.stringify(report.errorsByCode)}`);
  lines.push(...memoryLines(report), ...subscriptionLines(report));
  lines.push(...gatewayLines(report));
  lines.push(`guardian events: ${JSON.stringify(report.guardianEvents)}`);
  lines.push(...diffLines(report.stateDiff));
  if (report.stateDiffError) lines.push(`state diff failed: ${report.stateDiffError}`);
  lines.push("", `${report.passed ? "PASSED" : "FAILED"}; report in ${file}`);
  process.stdout.write(lines.join("\n") + "\n");
}

function memoryLines(report: SoakReport): string[] {
  const format = (m: GatewayMemory | null) =>
    m
      ? `RSS ${mib(m.rssBytes)} MiB, heap ${mib(m.heapUsedBytes)}/${mib(m.heapTotalBytes)} MiB`
      : "not read";
  return [
    "",
    `memory after warm-up and a full GC: ${format(report.memory.start)}`,
    `memory peak (RSS):                  ${format(report.memory.peak)}`,
    `memory after settle and a full GC:  ${format(report.memory.end)}`,
  ];
}

function subscriptionLines(report: SoakReport): string[] {
  const lines = [
    "",
    `published (confirmed): ${JSON.stringify(report.publisher.confirmed)}, ` +
      `unconfirmed ${report.publisher.failed}, reconnects ${report.publisher.reconnects}`,
  ];
  for (const s of report.subscribers) {
    const expected =
      s.kind === "messages" ? ` of ${report.publisher.confirmed[s.target] ?? 0}` : "";
    lines.push(
      `  ${s.kind} ${s.target}: received ${s.received}${expected}, ` +
        `GAP ${s.gapNotices}, LOST ${s.lostNotices} (${s.lostMessages} messages), ` +
        `ended ${JSON.stringify(s.ended)}, socket closes ${JSON.stringify(s.socketCloses)}`,
    );
  }
  return lines;
}

function gatewayLines(report: SoakReport): string[] {
  const { gateway } = report;
  return [
    "",
    `gateway crashed: ${gateway.crashed ? JSON.stringify(gateway.crashed) : "no"}`,
    `unhandled rejections logged: ${gateway.unhandledRejections.length}`,
    `error log lines: ${JSON.stringify(gateway.errorLogs)}`,
    `shutdown: ${JSON.stringify(gateway.shutdown)}`,
  ];
}

function diffLines(diff: StateDiff | null): string[] {
  if (!diff) return [];
  const lines = ["", `state: ${JSON.stringify(diff.counts)}`];
  const sides = [
    ["in the database, not on the broker", diff.missingOnBroker],
    ["on the broker, not in the database", diff.missingInDatabase],
  ] as const;
  for (const [title, groups] of sides) {
    for (const [what, names] of Object.entries(groups)) {
      if (names.length) lines.push(`${what} ${title}: ${names.join(", ")}`);
    }
  }
  if (lines.length === 2) lines.push("state diff: empty");
  return lines;
}

function pad(value: number | null, width: number): string {
  return String(value ?? "-").padEnd(width);
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
