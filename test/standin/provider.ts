/**
 * The two @pulumi/command 1.2.1 resources that provisioning uses, as the
 * provider runs them (provider/pkg/provider/remote/):
 * - Command (commandController.go): Create runs `create` (lines 31-60; no
 *   `create`, nothing runs); Update runs `update` if set, else `create`, with
 *   the previous stdout/stderr (lines 63-83); Delete runs `delete` with the
 *   saved state, if set (lines 86-92). Outputs stdout/stderr are saved only
 *   when the command succeeds (commandOutputs.go lines 100-106).
 * - CopyToRemote (copyController.go): Create copies (lines 118-135); Update
 *   copies only if the source's hash or `remotePath` changed (lines 137-154);
 *   no Delete: nothing is removed from the host.
 * A failed command's error reads as the provider's: `Process exited with
 * status N: running "<cmd>":` and the combined output (commandOutputs.go line 101).
 * Output is logged while the command runs, a line at a time: the streams that
 * `logging` names (default both) feed one pipe, read by a line scanner that
 * sends each line to the engine as an ephemeral info status
 * (commandOutputs.go lines 77-98, util/util.go LogOutput lines 32-53). The
 * engine masks only stack-config secrets in it, not program secrets
 * (pulumi/pulumi pkg/engine/events.go, issue #3138): a step whose output is
 * shown must print none.
 */
import type { Client } from 'ssh2';
import { copyToRemote } from './copy-to-remote';
import { sftpFs } from './remote-fs';
import { dial, execOn, openSftp, type Connection } from './ssh';

export const COMMAND = 'command:remote:Command';
export const COPY = 'command:remote:CopyToRemote';

export type Source = { kind: 'archive' | 'asset'; path: string; hash: string };
export type Inputs = Record<string, any> & { connection: Connection };
export type Outputs = { stdout?: string; stderr?: string };
export type Log = (line: string) => void;

export interface ResourceProvider {
  create(inputs: Inputs, log: Log): Promise<Outputs>;
  update(olds: Inputs, oldOutputs: Outputs, news: Inputs, log: Log): Promise<Outputs>;
  delete(olds: Inputs, oldOutputs: Outputs, log: Log): Promise<void>;
}

async function withClient<T>(connection: Connection, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await dial(connection);
  try {
    return await fn(client);
  } finally {
    client.end();
  }
}

/** CommandOutputs.run: one command on a fresh connection. */
async function run(inputs: Inputs, command: string, previous: Outputs, log: Log): Promise<Outputs> {
  return withClient(inputs.connection, async (client) => {
    // The provider sets `environment` with want-reply Setenv and fails when sshd refuses it (Debian's
    // AcceptEnv allows LANG LC_* only); ssh2 sends it without a reply, so the stand-in cannot tell: refuse it.
    if (inputs.environment && Object.keys(inputs.environment).length) throw new Error('the stand-in does not model `environment` (see provider.ts)');
    const env: Record<string, string> = {};
    if (inputs.addPreviousOutputInEnv !== false) {
      if (previous.stdout) env.PULUMI_COMMAND_STDOUT = previous.stdout;
      if (previous.stderr) env.PULUMI_COMMAND_STDERR = previous.stderr;
    }
    const logging: string = inputs.logging ?? 'stdoutAndStderr';
    const logged = (stream: 'stdout' | 'stderr') => logging === 'stdoutAndStderr' || logging === stream;
    let partial = '';
    const onData = (chunk: string, stream: 'stdout' | 'stderr') => {
      if (!logged(stream)) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      lines.forEach((line) => log(line));
    };
    const r = await execOn(client, command, { stdin: inputs.stdin, env, onData });
    if (partial) log(partial);
    if (r.code !== 0) {
      const status = r.code === null ? `Process exited with signal ${r.signal}` : `Process exited with status ${r.code}`;
      throw new Error(`${status}: running ${JSON.stringify(command)}:\n${r.combined}`);
    }
    return { stdout: r.stdout.replace(/\n$/, ''), stderr: r.stderr.replace(/\n$/, '') };
  });
}

export const commandProvider: ResourceProvider = {
  create: (inputs, log) => (inputs.create === undefined ? Promise.resolve({}) : run(inputs, inputs.create, {}, log)),
  update: (_olds, oldOutputs, news, log) => {
    const command = news.update ?? news.create;
    return command === undefined ? Promise.resolve(oldOutputs) : run(news, command, oldOutputs, log);
  },
  delete: async (olds, oldOutputs, log) => {
    if (olds.delete !== undefined) await run(olds, olds.delete, oldOutputs, log);
  },
};

async function copy(inputs: Inputs) {
  const source = inputs.source as Source;
  await withClient(inputs.connection, async (client) => copyToRemote(sftpFs(await openSftp(client)), source.path, inputs.remotePath));
  return {};
}

export const copyProvider: ResourceProvider = {
  create: (inputs) => copy(inputs),
  update: async (olds, _oldOutputs, news) => {
    const needCopy = (news.source as Source).hash !== (olds.source as Source).hash || news.remotePath !== olds.remotePath;
    return needCopy ? copy(news) : {};
  },
  delete: async () => {},
};

export const providers: Record<string, ResourceProvider> = { [COMMAND]: commandProvider, [COPY]: copyProvider };
