// Polling with a deadline, for scripts and tests alike.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it returns something other than undefined or false, or
 * the time runs out; the error names what was awaited and the last failure.
 */
async function waitUntil(what, check, { timeoutMs = 30000, intervalMs = 100 } = {}) {
  const until = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

module.exports = { sleep, waitUntil };
