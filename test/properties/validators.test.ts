// Properties of the input checks that stand between a client and the
// broker: each accepts only what is safe to send and rejects the rest with
// BAD_USER_INPUT, and the permissions of an account never reach another's
// names.
import fc from "fast-check";

import { isEmail } from "../../src/auth";
import { findNulInVariables } from "../../src/schema";
import { BadInputError } from "../../src/errors";
import { compileFilter, validateBindingPattern } from "../../src/live";
import {
  accountPermissions,
  buildQueueName,
  validateAccountName,
  validateExchangeName,
} from "../../src/services";
import { hostileName, plausibleWord, topicPattern } from "./arbitraries";

const RESERVED = /^(guest|admin|administrator|root)$/i;
const RUNS = { numRuns: 500 };

/** Runs check and returns its BadInputError, or null when it passed. */
function rejection(check: () => unknown): BadInputError | null {
  try {
    check();
    return null;
  } catch (error) {
    expect(error).toBeInstanceOf(BadInputError);
    return error as BadInputError;
  }
}

const accountName = fc.oneof(hostileName, plausibleWord);

test("accepted account names are plain", () => {
  fc.assert(
    fc.property(accountName, (name) => {
      const error = rejection(() => validateAccountName(name, RESERVED, "gateway"));
      if (error) {
        expect(error.message.length).toBeLessThan(400);
        return;
      }
      expect(name).toMatch(/^[a-zA-Z][a-zA-Z0-9._-]*$/);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    }),
    RUNS,
  );
});

test("queue names stay inside the account", () => {
  fc.assert(
    fc.property(
      fc.oneof(hostileName, fc.array(plausibleWord, { minLength: 1, maxLength: 5 }).map((w) => w.join("/"))),
      (name) => {
        let full = "";
        const error = rejection(() => (full = buildQueueName("acct", name)));
        if (error) return;
        expect(full.startsWith("queue/acct/")).toBe(true);
        expect(Buffer.byteLength(full)).toBeLessThanOrEqual(255);
        const words = full.split("/");
        expect(words.every((word) => word.length > 0 && !/^\.+$/.test(word))).toBe(true);
        expect(full).not.toMatch(/[\s%#?*\u0000]/);
      },
    ),
    RUNS,
  );
});

test("accepted exchange names fit the broker", () => {
  fc.assert(
    fc.property(fc.oneof(hostileName, hostileName.map((n) => `exchange/${n}`)), (name) => {
      if (rejection(() => validateExchangeName(name))) return;
      expect(name.startsWith("exchange/")).toBe(true);
      expect(name).not.toMatch(/\s/);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    }),
    RUNS,
  );
});

test("accepted patterns use whole-word wildcards", () => {
  fc.assert(
    fc.property(topicPattern, (pattern) => {
      const problem = validateBindingPattern(pattern);
      if (problem !== null) {
        expect(problem.length).toBeGreaterThan(0);
        return;
      }
      expect(Buffer.byteLength(pattern)).toBeLessThanOrEqual(255);
      for (const word of pattern.split(".")) {
        if (word.includes("*") || word.includes("#")) {
          expect(["*", "#"]).toContain(word);
        }
      }
    }),
    RUNS,
  );
});

test("permissions confine an account to its names", () => {
  const valid = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9._-]{0,10}$/);
  fc.assert(
    fc.property(valid, valid, plausibleWord, (own, other, rest) => {
      fc.pre(own !== other);
      const permissions = accountPermissions(own);
      const configure = new RegExp(permissions.configure);
      const read = new RegExp(permissions.read);
      expect(configure.test(`queue/${own}/${rest}`)).toBe(true);
      expect(configure.test(`exchange/${own}/${rest}`)).toBe(true);
      expect(configure.test(`queue/${other}/${rest}`)).toBe(false);
      expect(configure.test(`exchange/${other}/${rest}`)).toBe(false);
      expect(read.test(`queue/${other}/${rest}`)).toBe(false);
      expect(read.test(`exchange/${other}/${rest}`)).toBe(true);
    }),
    RUNS,
  );
});

test("accepted e-mail addresses are plain", () => {
  fc.assert(
    fc.property(fc.oneof(hostileName, fc.emailAddress()), (value) => {
      if (!isEmail(value)) return;
      expect(value.length).toBeLessThanOrEqual(254);
      expect(value).not.toMatch(/\s/);
      expect(value.split("@")).toHaveLength(2);
    }),
    RUNS,
  );
});

const condition = fc.record(
  {
    path: fc.oneof(hostileName, fc.constantFrom("__proto__", "constructor", "a.__proto__.b")),
    equals: fc.jsonValue(),
    in: fc.array(fc.jsonValue(), { maxLength: 3 }),
    exists: fc.boolean(),
  },
  { requiredKeys: ["path"] },
);

test("filters reject bad input, never throw later", () => {
  fc.assert(
    fc.property(
      fc.array(condition, { maxLength: 25 }),
      fc.array(fc.jsonValue(), { maxLength: 5 }),
      (conditions, payloads) => {
        let predicate: ((payload: unknown) => boolean) | null = null;
        if (rejection(() => (predicate = compileFilter(conditions)))) return;
        for (const payload of payloads) {
          expect(typeof predicate!(payload)).toBe("boolean");
        }
      },
    ),
    RUNS,
  );
});

test("filters never match inherited properties", () => {
  for (const path of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
    const present = compileFilter([{ path, exists: true }]);
    expect(present({})).toBe(false);
    expect(present([])).toBe(false);
  }
});

test("NUL found at any depth of variables", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (left, right) => {
      const clean = findNulInVariables({ left, right });
      const hasNul = JSON.stringify({ left, right }).includes("\\u0000");
      expect(clean !== null).toBe(hasNul);
      expect(findNulInVariables({ left, right, bad: [{ x: "a\u0000" }] })).not.toBeNull();
    }),
    RUNS,
  );
});

test("NUL search survives deep nesting", () => {
  let nested: unknown = "a\u0000b";
  for (let i = 0; i < 100_000; i += 1) nested = [nested];
  expect(findNulInVariables({ deep: nested })).toMatch(/^\$deep\[0\]/);
});
