/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Type checking is `tsc --noEmit` in `npm test`; ts-jest only transpiles (isolatedModules in
  // tsconfig.json), which keeps the suite fast on two cores.
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  // Synthesising the whole app takes a few seconds per test file.
  testTimeout: 120000,
  maxWorkers: 2,
};
