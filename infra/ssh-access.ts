/**
 * How an operator reaches the stack's host with the host key the stack pins
 * (generated for target aws, sshHostKey for target ssh), so the first
 * connection already verifies: the known_hosts line, and an ssh command that
 * accepts only the keys in that file (no trust-on-first-use prompt).
 */

/** A known_hosts line: `host key` on port 22, `[host]:port key` on any other (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT). */
export function knownHostsLine(host: string, port: number, hostKey: string): string {
  const [type, blob] = hostKey.trim().split(/\s+/);
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${blob}`;
}

/** Where an operator keeps a stack's line: ssh expands %d to the local user's home (ssh_config(5), UserKnownHostsFile tokens). */
export const knownHostsFile = (stack: string) => `%d/.ssh/cemetery-${stack}.known_hosts`;

/**
 * The ssh command's words; none contains a space, so `$(pulumi stack output sshCommand)` splits it as written.
 * StrictHostKeyChecking=yes: a host whose key is not the pinned one is refused, never added.
 */
export function sshCommandWords(opts: { user: string; host: string; port: number; knownHosts: string }): string[] {
  return ['ssh', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${opts.knownHosts}`, ...(opts.port === 22 ? [] : ['-p', String(opts.port)]), `${opts.user}@${opts.host}`];
}
