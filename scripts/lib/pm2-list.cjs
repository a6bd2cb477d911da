// `pm2 jlist` output, parsed once for the scripts, the tests and the release tool on the host.

/** A call that starts the daemon prints "[PM2] Spawning ..." lines first; the JSON is the last line. */
function parseJlist(text) {
  const lines = String(text).trim().split('\n');
  return JSON.parse(lines[lines.length - 1] || '[]');
}

module.exports = { parseJlist };
