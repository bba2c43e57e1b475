// Addresses, credentials and load sizes of the benchmark. Every address
// is on this machine: the benchmark sends no traffic anywhere else.

export const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672";
export const MANAGEMENT_URL = "http://127.0.0.1:15672";
export const MANAGEMENT_USER = "guest";
export const MANAGEMENT_PASSWORD = "guest";
export const VHOST = "/";

/** Database of the benchmark's gateway, which creates it if missing. */
export const BENCH_DATABASE_URL =
  "postgresql://postgres@127.0.0.1:5432/pulse_gateway_bench";

/** HS256 secret of the benchmark's gateway, which listens on 127.0.0.1 only. */
export const BENCH_JWT_SECRET = "benchmark-secret-for-the-local-gateway-only";

/** Load sizes of one run. `--quick` picks the smaller set. */
export interface LoadSizes {
  /** Rounds of each throughput and latency measure per server. */
  rounds: number;
  burstMessagesOneSubscriber: number;
  burstMessagesManySubscribers: number;
  manySubscribers: number;
  latencyOneRate: number;
  latencyManyRate: number;
  latencySeconds: number;
  idleSubscriptions: number;
  idleSockets: number;
  idleBindings: number;
  pausedMessages: number;
  pausedRate: number;
}

export const FULL_SIZES: LoadSizes = {
  rounds: 3,
  burstMessagesOneSubscriber: 20_000,
  burstMessagesManySubscribers: 2_000,
  manySubscribers: 100,
  latencyOneRate: 1_000,
  latencyManyRate: 200,
  latencySeconds: 10,
  idleSubscriptions: 10_000,
  idleSockets: 100,
  idleBindings: 100,
  pausedMessages: 10_000,
  pausedRate: 2_000,
};

export const QUICK_SIZES: LoadSizes = {
  rounds: 1,
  burstMessagesOneSubscriber: 2_000,
  burstMessagesManySubscribers: 200,
  manySubscribers: 100,
  latencyOneRate: 1_000,
  latencyManyRate: 200,
  latencySeconds: 2,
  idleSubscriptions: 1_000,
  idleSockets: 10,
  idleBindings: 10,
  pausedMessages: 2_000,
  pausedRate: 2_000,
};
