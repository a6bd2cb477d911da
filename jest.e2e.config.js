/** npm run test:e2e: the slow tier, on a real Debian VM (see test/e2e). */
const base = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: ['**/test/e2e/**/*.e2e.ts'],
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 60 * 60 * 1000,
  maxWorkers: 1,
};
