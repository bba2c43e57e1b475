/** @type {import("jest").Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.[tj]s$": ["ts-jest", { tsconfig: "tsconfig.jest.json" }],
  },
  // jose 6 is published as ES modules only, so Jest must transform it.
  transformIgnorePatterns: ["/node_modules/(?!jose/)"],
  // The generated Prisma client imports its siblings as "./x.js".
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testTimeout: 60000,
};
