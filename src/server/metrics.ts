// Prometheus text exposition of the gateway's gauges, written by hand
// because there are few of them.

export interface MetricSample {
  name: string;
  help: string;
  type: "gauge" | "counter";
  value: number;
  labels?: Record<string, string>;
}

export function renderMetrics(samples: MetricSample[]): string {
  const lines: string[] = [];
  const described = new Set<string>();
  for (const sample of samples) {
    if (!described.has(sample.name)) {
      lines.push(`# HELP ${sample.name} ${sample.help}`);
      lines.push(`# TYPE ${sample.name} ${sample.type}`);
      described.add(sample.name);
    }
    lines.push(`${sample.name}${renderLabels(sample.labels)} ${sample.value}`);
  }
  return lines.join("\n") + "\n";
}

function renderLabels(labels: Record<string, string> | undefined): string {
  if (!labels || Object.keys(labels).length === 0) return "";
  const pairs = Object.entries(labels).map(
    ([key, value]) => `${key}="${value.replace(/["\\\n]/g, "\\$&")}"`,
  );
  return `{${pairs.join(",")}}`;
}
