/**
 * A jest reporter that ends a run which failed with a short digest of each failure: its name and the last lines of
 * its message, without colours, code frames or stack. A CI that keeps only the head and tail of a long log (the VM
 * tier prints thousands of lines) then still shows why each test failed, and the diagnostics the product printed
 * last (cemetery-db's, for one) before it gave up.
 */
const { stripVTControlCharacters } = require('node:util');

const LINES_PER_FAILURE = 14;

const isNoise = (line) => /^\s*(>?\s*\d+ \||\|\s*\^|at .+:\d+:\d+\)?$|at .+ \(.+\)$)/.test(line) || !line.trim();

class FailureDigest {
  onRunComplete(_contexts, results) {
    // A file that could not run at all (it did not compile, its beforeAll threw) fails as a whole.
    const failed = results.testResults.flatMap((file) => [
      ...(file.testExecError ? [{ fullName: file.testFilePath, failureMessages: [file.failureMessage ?? file.testExecError.message] }] : []),
      ...file.testResults.filter((a) => a.status === 'failed'),
    ]);
    if (failed.length === 0) return;
    const out = [`\nfailure digest: ${failed.length} test(s) failed, the last ${LINES_PER_FAILURE} lines of each message`];
    for (const a of failed) {
      const lines = stripVTControlCharacters(a.failureMessages.join('\n')).split('\n').filter((l) => !isNoise(l));
      // The same line said again and again (a wait's progress) once, with its count.
      const folded = [];
      for (const line of lines) {
        const last = folded[folded.length - 1];
        if (last && last.line === line) last.times++;
        else folded.push({ line, times: 1 });
      }
      out.push(`✕ ${a.fullName}`);
      for (const { line, times } of folded.slice(-LINES_PER_FAILURE)) out.push(`    ${line.trim()}${times > 1 ? ` (×${times})` : ''}`);
    }
    process.stderr.write(`${out.join('\n')}\n`);
  }
}

module.exports = FailureDigest;
