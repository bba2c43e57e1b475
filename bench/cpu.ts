// CPU time of the processes taking part in a measure, read from /proc
// (Linux only), so that cost per event can be compared even when the
// machine is too busy for wall-clock rates to be steady.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface CpuTimes {
  /** The server under test. */
  server: number;
  /** The part of `server` spent in the kernel, mostly loopback TCP. */
  serverKernel: number;
  /** This process: the graphql-ws clients. */
  clients: number;
  publisher: number;
  /** Every RabbitMQ (beam.smp) process of the machine. */
  broker: number;
}

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User and system CPU milliseconds of a process, zero if it is gone. */
function processTimes(pid: number): { user: number; system: number } {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return { user: 0, system: 0 };
  }
  // The command name may contain spaces, so fields are counted after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const toMs = (ticks: string) => (Number(ticks) * 1000) / clockTicks();
  return { user: toMs(fields[11]), system: toMs(fields[12]) };
}

export function processCpuMs(pid: number): number {
  const { user, system } = processTimes(pid);
  return user + system;
}

let brokerPidCache: number[] | null = null;

function brokerPids(): number[] {
  if (brokerPidCache === null) {
    brokerPidCache = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "beam.smp") {
          brokerPidCache.push(Number(entry));
        }
      } catch {
        // The process exited while /proc was being listed.
      }
    }
  }
  return brokerPidCache;
}

export function readCpu(serverPid: number, publisherPid: number): CpuTimes {
  const own = process.cpuUsage();
  const server = processTimes(serverPid);
  return {
    server: server.user + server.system,
    serverKernel: server.system,
    clients: (own.user + own.system) / 1000,
    publisher: processCpuMs(publisherPid),
    broker: brokerPids().reduce((sum, pid) => sum + processCpuMs(pid), 0),
  };
}

export function cpuSince(start: CpuTimes, end: CpuTimes): CpuTimes {
  return {
    server: end.server - start.server,
    serverKernel: end.serverKernel - start.serverKernel,
    clients: end.clients - start.clients,
    publisher: end.publisher - start.publisher,
    broker: end.broker - start.broker,
  };
}
