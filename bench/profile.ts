// Summary of a V8 CPU profile (.cpuprofile, as written by node --cpu-prof):
// self time per function and per package, busiest first.
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  /** Share of all samples, idle included. */
  share: number;
  ms: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of samples in which the process was not idle. */
  busyShare: number;
  functions: SelfTime[];
  packages: SelfTime[];
}

/** A node of V8's sampling heap profile (HeapProfiler.stopSampling). */
export interface HeapProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapProfileNode[];
}

export interface HeapSummary {
  totalBytes: number;
  /** Bytes still reachable, by the function that allocated them. */
  functions: { name: string; bytes: number }[];
  packages: { name: string; bytes: number }[];
}

/** Adds up a sampling heap profile by allocating function and package. */
export function summarizeHeapProfile(head: HeapProfileNode, limit = 15): HeapSummary {
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let totalBytes = 0;
  const stack: HeapProfileNode[] = [head];
  while (stack.length > 0) {
    const node = stack.pop()!;
    stack.push(...node.children);
    if (node.selfSize === 0) continue;
    totalBytes += node.selfSize;
    const name = frameName(node.callFrame);
    functions.set(name, (functions.get(name) ?? 0) + node.selfSize);
    const pkg = packageOf(node.callFrame.functionName, node.callFrame.url);
    packages.set(pkg, (packages.get(pkg) ?? 0) + node.selfSize);
  }
  const top = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, bytes]) => ({ name, bytes }));
  return { totalBytes, functions: top(functions), packages: top(packages) };
}

function frameName(frame: { functionName: string; url: string; lineNumber: number }): string {
  const { functionName, url, lineNumber } = frame;
  return `${functionName || "(anonymous)"} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ""}`;
}

/** Reads a profile and returns its `limit` busiest functions and packages. */
export function summarizeProfile(file: string, limit = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i, so it is charged to sample i.
  profile.samples.forEach((id, index) => {
    const delta = Math.max(0, profile.timeDeltas[index] ?? 0);
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });

  const totalUs = profile.endTime - profile.startTime;
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url } = node.callFrame;
    if (functionName === "(idle)") idleUs += us;
    const name = frameName(node.callFrame);
    functions.set(name, (functions.get(name) ?? 0) + us);
    const pkg = packageOf(functionName, url);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }

  const top = (map: Map<string, number>): SelfTime[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, ms: us / 1000, share: totalUs > 0 ? us / totalUs : 0 }));
  return {
    file,
    totalMs: totalUs / 1000,
    busyShare: totalUs > 0 ? 1 - idleUs / totalUs : 0,
    functions: top(functions),
    packages: top(packages),
  };
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) return url.slice(modules + "node_modules/".length);
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + "/dist/".length);
  return url.replace(/^file:\/\//, "");
}

/** Groups a frame by npm package, gateway source, Node internals or V8. */
function packageOf(functionName: string, url: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (match) return match[1];
  if (url.startsWith("node:")) return "node internals";
  if (url.includes("/dist/") && !url.includes("/dist/bench/")) {
    const area = /\/dist\/([^/]+)/.exec(url);
    return `gateway src/${area?.[1] ?? ""}`;
  }
  return shortUrl(url);
}
