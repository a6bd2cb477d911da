/** The reporter that ends a failed run with a digest of its failures (test/support/failure-digest.cjs). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FailureDigest = require('./support/failure-digest.cjs');

type Assertion = { status: string; fullName: string; failureMessages: string[] };

function digestOf(testResults: Assertion[], file: Record<string, unknown> = {}) {
  let written = '';
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written += String(chunk);
    return true;
  });
  try {
    new FailureDigest().onRunComplete(new Set(), { testResults: [{ testFilePath: '/repo/test/x.test.ts', ...file, testResults }] });
  } finally {
    spy.mockRestore();
  }
  return written;
}

test('a failed test: its name, and the end of its message without colours, code frame or stack; a repeated line once, counted', () => {
  const message = [
    'Error: ssh cemetery-db restore exited 1:',
    ...Array(180).fill('    cemetery-db: waiting for WAL 06 to reach the archive (last archived: 05)'),
    '  12345 190 pgbackrest --stanza=cemetery archive-push pg_wal/06',
    '  segments waiting to be archived: 06.ready',
    '\u001b[31mcemetery-db: PostgreSQL could not archive its current WAL (06)\u001b[39m',
    '',
    '    \u001b[0m \u001b[90m 41 |\u001b[39m     child.stderr.on(...)',
    '    > 43 |     child.on(\'close\', ...)',
    '         |                                                                        ^',
    '      at ChildProcess.<anonymous> (test/e2e/vm-ssh.ts:43:72)',
    '      at Object.<anonymous> (test/e2e/provision.e2e.ts:1245:26)',
  ].join('\n');
  const digest = digestOf([
    { status: 'passed', fullName: 'a passing one', failureMessages: [] },
    { status: 'failed', fullName: 'backups › point in time', failureMessages: [message] },
  ]);
  expect(digest).toBe([
    '',
    'failure digest: 1 test(s) failed, the last 14 lines of each message',
    '✕ backups › point in time',
    '    Error: ssh cemetery-db restore exited 1:',
    '    cemetery-db: waiting for WAL 06 to reach the archive (last archived: 05) (×180)',
    '    12345 190 pgbackrest --stanza=cemetery archive-push pg_wal/06',
    '    segments waiting to be archived: 06.ready',
    '    cemetery-db: PostgreSQL could not archive its current WAL (06)',
    '',
  ].join('\n'));
});

test('a run with no failure prints nothing', () => {
  expect(digestOf([{ status: 'passed', fullName: 'fine', failureMessages: [] }])).toBe('');
});

test('a file that could not run: its path and why', () => {
  const digest = digestOf([], { testExecError: { message: 'x' }, failureMessage: '  ● Test suite failed to run\n\n    Cannot find module ./nowhere' });
  expect(digest).toContain('✕ /repo/test/x.test.ts\n    ● Test suite failed to run\n    Cannot find module ./nowhere\n');
});
