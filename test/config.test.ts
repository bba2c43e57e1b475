import { ConfigError, loadConfig } from "../src/config";

describe("loadConfig", () => {
  test.each([
    ["PORT", "70000", "PORT"],
    ["PORT", "-1", "PORT"],
    ["LOG_LEVEL", "loud", "LOG_LEVEL"],
    ["AMQP_URL", "http://127.0.0.1:5672", "AMQP_URL"],
    ["AMQP_URL", "not a url", "AMQP_URL"],
  ])("rejects %s=%s", (name, value, named) => {
    const load = () => loadConfig({ [name]: value });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(named);
    expect(load).toThrow(value);
  });

  test("accepts valid values", () => {
    const config = loadConfig({
      PORT: "65535",
      LOG_LEVEL: "debug",
      AMQP_URL: "amqps://user:pw@127.0.0.1:5671/pulse",
    });
    expect(config.port).toBe(65535);
    expect(config.logLevel).toBe("debug");
    expect(config.amqpUrl).toBe("amqps://user:pw@127.0.0.1:5671/pulse");
  });
});
