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

  test("RABBITMQ_VHOST alone sets the AMQP vhost", () => {
    const config = loadConfig({
      AMQP_URL: "amqp://user:pw@127.0.0.1:5672",
      RABBITMQ_VHOST: "pulse/one",
    });
    expect(config.vhost).toBe("pulse/one");
    expect(config.amqpUrl).toBe("amqp://user:pw@127.0.0.1:5672/pulse%2Fone");
  });

  test("AMQP_URL vhost alone sets RABBITMQ_VHOST", () => {
    const config = loadConfig({ AMQP_URL: "amqp://127.0.0.1/pulse%2Fone" });
    expect(config.vhost).toBe("pulse/one");
  });

  test("equal vhosts accepted", () => {
    const config = loadConfig({
      AMQP_URL: "amqp://127.0.0.1/pulse",
      RABBITMQ_VHOST: "pulse",
    });
    expect(config.vhost).toBe("pulse");
    expect(config.amqpUrl).toBe("amqp://127.0.0.1/pulse");
  });

  test("no vhost means the default", () => {
    const config = loadConfig({ AMQP_URL: "amqp://127.0.0.1/" });
    expect(config.vhost).toBe("/");
    expect(config.amqpUrl).toBe("amqp://127.0.0.1/");
  });

  test("different vhosts rejected", () => {
    const load = () =>
      loadConfig({
        AMQP_URL: "amqp://user:secret@127.0.0.1/other",
        RABBITMQ_VHOST: "pulse",
      });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow('RABBITMQ_VHOST is "pulse"');
    expect(load).toThrow('AMQP_URL names the vhost "other"');
    expect(load).not.toThrow("secret");
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
