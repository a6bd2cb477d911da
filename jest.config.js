/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.[tj]s$': ['ts-jest', { tsconfig: { allowJs: true, isolatedModules: true } }] },
  // Some dependencies ship only ES modules (cookie, via Fastify's inject); jest needs them as CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!(cookie)/)'],
  // One real PostgreSQL for the whole run; each test file makes its own database in it.
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 60000,
  // A failed run ends with why each test failed, short enough to survive a log cut to its head and tail.
  reporters: ['default', '<rootDir>/test/support/failure-digest.cjs'],
  // More than the two cores: several files mostly wait (PM2's timeouts, HAProxy's checks); 3 took 113 s here, 2 took 138 s.
  maxWorkers: 3,
};
