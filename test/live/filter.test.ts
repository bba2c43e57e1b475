// Payload filters: dot paths, equality of any JSON value, one of a list,
// present or absent, and invalid conditions.
import { compileFilter } from "../../src/live";

const payload = {
  status: { state: "failed", runs: [1, 2], meta: { a: 1, b: 2 } },
  empty: null,
};

test.each([
  ["string equality", { path: "status.state", equals: "failed" }, true],
  ["string inequality", { path: "status.state", equals: "done" }, false],
  ["array equality", { path: "status.runs", equals: [1, 2] }, true],
  ["object equality ignores key order", { path: "status.meta", equals: { b: 2, a: 1 } }, true],
  ["null equality", { path: "empty", equals: null }, true],
  ["missing path never equals", { path: "status.nope", equals: null }, false],
  ["one of a list", { path: "status.state", in: ["x", "failed"] }, true],
  ["none of a list", { path: "status.state", in: ["x", "y"] }, false],
  ["present", { path: "status.meta.a", exists: true }, true],
  ["absent", { path: "status.meta.z", exists: false }, true],
  ["path through a scalar", { path: "status.state.length", exists: true }, false],
])("%s", (_case, condition, expected) => {
  expect(compileFilter([condition])(payload)).toBe(expected);
});

test("all conditions must hold", () => {
  const filter = compileFilter([
    { path: "status.state", equals: "failed" },
    { path: "status.meta.a", equals: 2 },
  ]);
  expect(filter(payload)).toBe(false);
});

test("non-object payload matches nothing", () => {
  expect(compileFilter([{ path: "a", exists: true }])("text")).toBe(false);
});

test.each([
  ["empty path", { path: "", equals: 1 }],
  ["empty segment", { path: "a..b", equals: 1 }],
  ["no operator", { path: "a" }],
  ["two operators", { path: "a", equals: 1, exists: true }],
  ["empty in list", { path: "a", in: [] }],
  ["null in list", { path: "a", in: null }],
])("rejects %s", (_case, condition) => {
  expect(() => compileFilter([condition])).toThrow(
    expect.objectContaining({ code: "BAD_USER_INPUT" }),
  );
});
