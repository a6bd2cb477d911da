/**
 * An SSH connection as @pulumi/command 1.2.1 makes one
 * (provider/pkg/provider/remote/connection.go), with ssh2:
 * - `hostKey` set: only that key is accepted, and only its algorithm offered
 *   (SSHConfig, lines 85-98: ssh.FixedHostKey); unset: any host key (line 97).
 * - dialled up to `dialErrorLimit` times, each with `perDialTimeout` seconds
 *   (Dial and dialWithRetry, lines 150-206; defaults 10 and 15), waiting as
 *   pulumi's retry.Until does between dials: 100 ms, times 1.5, at most 5 s
 *   (sdk/go/common/util/retry/until.go, lines 40-42 and 89-113). A host key
 *   mismatch is a failed dial like any other: it is retried too.
 * A command runs as the provider's CommandOutputs.run does
 * (commandOutputs.go, lines 30-108): one session, PULUMI_COMMAND_STDOUT and
 * _STDERR sent as environment requests when there is a previous output (sshd
 * applies them only if its AcceptEnv allows; the provider then only warns),
 * stdin fed when non-empty, the command string as the exec request (sshd
 * runs it with the user's shell, `$SHELL -c`).
 */
import { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';

export type Connection = {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  hostKey?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
};

function dialOnce(c: Connection): Promise<Client> {
  const config: ConnectConfig = {
    host: c.host,
    port: c.port ?? 22,
    username: c.user ?? 'root',
    privateKey: c.privateKey,
    readyTimeout: (c.perDialTimeout ?? 15) * 1000,
  };
  let hostKeyError: Error | undefined;
  if (c.hostKey) {
    const [type, blob] = c.hostKey.trim().split(/\s+/);
    config.algorithms = { serverHostKey: [type as never] };
    config.hostVerifier = (key: Buffer) => {
      const ok = key.toString('base64') === blob;
      if (!ok) hostKeyError = new Error('ssh: handshake failed: ssh: host key mismatch');
      return ok;
    };
  }
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('ready', () => resolve(client));
    client.once('error', (err) => reject(hostKeyError ?? err));
    client.connect(config);
  });
}

export async function dial(c: Connection): Promise<Client> {
  const limit = c.dialErrorLimit ?? 10;
  let delay = 100;
  for (let dials = 1; ; dials++) {
    try {
      return await dialOnce(c);
    } catch (err) {
      if (limit !== -1 && dials > limit) throw new Error(`after ${dials - 1} failed attempts: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(5000, delay * 1.5);
    }
  }
}

export function openSftp(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

export type CommandResult = { code: number | null; signal?: string; stdout: string; stderr: string; combined: string };

/** `onData`: each chunk as it arrives, with the stream it came on (the provider's log pipe is fed this way). */
export function execOn(
  client: Client,
  command: string,
  opts: { stdin?: string; env?: Record<string, string>; onData?: (chunk: string, stream: 'stdout' | 'stderr') => void } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, { env: opts.env }, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let combined = '';
      let code: number | null = null;
      let signal: string | undefined;
      stream.on('data', (d: Buffer) => ((stdout += d), (combined += d), opts.onData?.(d.toString(), 'stdout')));
      stream.stderr.on('data', (d: Buffer) => ((stderr += d), (combined += d), opts.onData?.(d.toString(), 'stderr')));
      stream.on('exit', (c: number | null, s?: string) => ((code = c), (signal = s)));
      stream.on('close', () => resolve({ code, signal, stdout, stderr, combined }));
      if (opts.stdin) stream.end(opts.stdin);
      else stream.end();
    });
  });
}
