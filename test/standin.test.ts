/**
 * The VM tier's stand-in for the Pulumi engine and @pulumi/command
 * (test/standin), checked against a real sshd on loopback: each row of the
 * provider's copy table, the in-memory model that npm test uses agreeing with
 * it, and the engine's update / replace / failure rules with real commands.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { copyToRemote } from './standin/copy-to-remote';
import { Engine, succeeded, type Program } from './standin/engine';
import { COMMAND, COPY } from './standin/provider';
import { MemoryFs, sftpFs } from './standin/remote-fs';
import { dial, execOn, openSftp, type Connection } from './standin/ssh';
import { SSHD, startSshd, type LoopbackSshd } from './support/sshd';
import { tempDir } from './support/temp-dir';

const haveSshd = existsSync(SSHD);
if (!haveSshd && process.env.CI) throw new Error(`${SSHD} is required in CI (.ci/run installs openssh-server)`);
if (!haveSshd) console.warn(`${SSHD} is missing: skipping the stand-in's conformance tests (apt-get install openssh-server)`);
const describeWithSshd = haveSshd ? describe : describe.skip;

let sshd: LoopbackSshd;
let connection: Connection;
let n = 0;
/** A fresh remote directory per test. */
const remoteDir = () => {
  const dir = path.join(sshd.dir, `t${++n}`);
  mkdirSync(dir);
  return dir;
};

beforeAll(async () => {
  if (!haveSshd) return;
  sshd = await startSshd();
  connection = { host: '127.0.0.1', port: sshd.port, user: sshd.user, privateKey: sshd.privateKey, dialErrorLimit: 2, perDialTimeout: 10 };
});
afterAll(async () => sshd?.stop());

/** Every file under `dir`, relative, sorted. */
const tree = (dir: string, rel = ''): string[] =>
  readdirSync(path.join(dir, rel))
    .sort()
    .flatMap((name) => (statSync(path.join(dir, rel, name)).isDirectory() ? tree(dir, path.join(rel, name)) : [path.join(rel, name)]));

/** A local source: dir `app` with `a.txt` and `sub/b.sh` (executable), and a file `one.txt`. */
const source = (() => {
  const dir = tempDir('copy-src');
  mkdirSync(path.join(dir, 'app', 'sub'), { recursive: true });
  writeFileSync(path.join(dir, 'app', 'a.txt'), 'a\n');
  writeFileSync(path.join(dir, 'app', 'sub', 'b.sh'), 'echo b\n');
  chmodSync(path.join(dir, 'app', 'sub', 'b.sh'), 0o755);
  writeFileSync(path.join(dir, 'one.txt'), 'one\n');
  return { dir: path.join(dir, 'app'), dirSlash: `${path.join(dir, 'app')}/`, file: path.join(dir, 'one.txt') };
})();

/** Copies over real SFTP and into the in-memory model from the same starting point; returns what landed (or the error) from both. */
async function copyBoth(src: string, dest: (root: string) => string, prepare: (root: string) => void = () => {}) {
  const root = remoteDir();
  prepare(root);
  const memory = new MemoryFs().mkdirs(root);
  for (const file of tree(root)) memory.entries.set(path.join(root, file), readFileSync(path.join(root, file)));
  for (const d of readdirSync(root)) if (statSync(path.join(root, d)).isDirectory()) memory.mkdirs(path.join(root, d));
  const client = await dial(connection);
  let real: string[] | string;
  try {
    await copyToRemote(sftpFs(await openSftp(client)), src, dest(root));
    real = tree(root);
  } catch (err) {
    real = `error: ${(err as Error).message}`;
  } finally {
    client.end();
  }
  let model: string[] | string;
  try {
    await copyToRemote(memory, src, dest(root));
    model = memory.files().map((f) => path.relative(root, f));
  } catch (err) {
    model = `error: ${(err as Error).message}`;
  }
  return { root, real, model };
}

describeWithSshd('CopyToRemote, row by row of the provider table (copyController.go sftpCopy)', () => {
  test('dir without slash onto an existing dir: dest/dir/...', async () => {
    const r = await copyBoth(source.dir, (root) => path.join(root, 'up'), (root) => mkdirSync(path.join(root, 'up')));
    expect(r.real).toEqual(['up/app/a.txt', 'up/app/sub/b.sh']);
    expect(r.model).toEqual(r.real);
  });

  test('dir without slash onto a missing path: dest/dir/..., parents created', async () => {
    const r = await copyBoth(source.dir, (root) => path.join(root, 'x', 'y'));
    expect(r.real).toEqual(['x/y/app/a.txt', 'x/y/app/sub/b.sh']);
    expect(r.model).toEqual(r.real);
  });

  test('dir without slash onto a file: error', async () => {
    const r = await copyBoth(source.dir, (root) => path.join(root, 'f'), (root) => writeFileSync(path.join(root, 'f'), 'f'));
    expect(r.real).toMatch(/^error: /);
    expect(r.model).toMatch(/^error: /);
  });

  test('dir with slash onto an existing dir: its contents in dest', async () => {
    const r = await copyBoth(source.dirSlash, (root) => path.join(root, 'up'), (root) => mkdirSync(path.join(root, 'up')));
    expect(r.real).toEqual(['up/a.txt', 'up/sub/b.sh']);
    expect(r.model).toEqual(r.real);
  });

  test('dir with slash onto a missing path: its contents in the new dest', async () => {
    const r = await copyBoth(source.dirSlash, (root) => path.join(root, 'x', 'y'));
    expect(r.real).toEqual(['x/y/a.txt', 'x/y/sub/b.sh']);
    expect(r.model).toEqual(r.real);
  });

  test('dir with slash onto a file: error', async () => {
    const r = await copyBoth(source.dirSlash, (root) => path.join(root, 'f'), (root) => writeFileSync(path.join(root, 'f'), 'f'));
    expect(r.real).toMatch(/^error: remote path .*\/f exists but is not a directory$/);
    expect(r.model).toMatch(/^error: remote path .*\/f exists but is not a directory$/);
  });

  test('file onto an existing dir: dest/file', async () => {
    const r = await copyBoth(source.file, (root) => path.join(root, 'up'), (root) => mkdirSync(path.join(root, 'up')));
    expect(r.real).toEqual(['up/one.txt']);
    expect(r.model).toEqual(r.real);
  });

  test('file onto a new path: dest itself, parents created', async () => {
    const r = await copyBoth(source.file, (root) => path.join(root, 'x', 'y', 'renamed.js'));
    expect(r.real).toEqual(['x/y/renamed.js']);
    expect(readFileSync(path.join(r.root, 'x/y/renamed.js'), 'utf8')).toBe('one\n');
    expect(r.model).toEqual(r.real);
  });

  test('file onto an existing file: overwritten', async () => {
    const r = await copyBoth(source.file, (root) => path.join(root, 'f'), (root) => writeFileSync(path.join(root, 'f'), 'old and longer\n'));
    expect(r.real).toEqual(['f']);
    expect(readFileSync(path.join(r.root, 'f'), 'utf8')).toBe('one\n');
    expect(r.model).toEqual(r.real);
  });

  test('nothing on the host is deleted, and file modes are not copied', async () => {
    const r = await copyBoth(source.dir, (root) => root, (root) => {
      mkdirSync(path.join(root, 'app'));
      writeFileSync(path.join(root, 'app', 'stale.txt'), 'from an earlier copy');
    });
    expect(r.real).toEqual(['app/a.txt', 'app/stale.txt', 'app/sub/b.sh']);
    expect(r.model).toEqual(r.real);
    expect(statSync(path.join(r.root, 'app/sub/b.sh')).mode & 0o111).toBe(0);
  });
});

/** A small program of commands: `name -> inputs`, each depending on the ones listed. */
function program(resources: Array<{ name: string; type?: string; inputs: Record<string, unknown>; dependsOn?: string[] }>): Program {
  return {
    resources: resources.map((r) => ({ type: r.type ?? COMMAND, name: r.name, inputs: { connection, ...r.inputs } })),
    dependencies: Object.fromEntries(resources.map((r) => [r.name, r.dependsOn ?? []])),
  };
}
const ran = (steps: { name: string; op: string }[]) => steps.map((s) => `${s.op} ${s.name}`);

describeWithSshd('the engine rules, with real commands over SSH', () => {
  test('create, then an unchanged up runs nothing; stdin reaches the command', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const p = program([{ name: 'a', inputs: { create: `cat > ${dir}/a; echo created`, stdin: 'from stdin\n' } }]);
    expect(ran(succeeded(await engine.up(p)))).toEqual(['create a']);
    expect(readFileSync(path.join(dir, 'a'), 'utf8')).toBe('from stdin\n');
    expect(engine.state.get('a')!.outputs.stdout).toBe('created');
    expect(ran(succeeded(await engine.up(p)))).toEqual([]);
  });

  test('output is logged a line at a time while the command runs, from the streams `logging` names', async () => {
    const dir = remoteDir();
    // After each line the command waits for a file the test writes only once it has seen that line: it can
    // end only if both were logged while it ran. The wait also fixes the order: stdout and stderr are two SSH
    // streams, and a line on one may arrive after a later line on the other (CI saw 'to stderr' after 'last').
    const go = (n: number) => path.join(dir, `go${n}`);
    const waitFor = (n: number) => `until [ -e ${go(n)} ]; do sleep 0.1; done`;
    const create = `echo first; ${waitFor(1)}; printf 'to stderr\\n' >&2; ${waitFor(2)}; printf 'last, unterminated'`;
    const seen: string[] = [];
    const engine = new Engine((line) => {
      seen.push(line);
      if (line === 'a: first') writeFileSync(go(1), '');
      if (line === 'a: to stderr') writeFileSync(go(2), '');
    });
    const result = await engine.up(program([{ name: 'a', inputs: { create } }]));
    expect(ran(succeeded(result))).toEqual(['create a']);
    expect(seen).toEqual(['a: first', 'a: to stderr', 'a: last, unterminated']);
    expect(result.output!.map((o) => [o.resource, o.line])).toEqual([['a', 'first'], ['a', 'to stderr'], ['a', 'last, unterminated']]);

    const only = async (logging: string) => {
      const lines: string[] = [];
      succeeded(await new Engine((line) => lines.push(line)).up(program([{ name: 'b', inputs: { create: 'echo out; echo err >&2', logging } }])));
      return lines;
    };
    expect(await only('stdout')).toEqual(['b: out']);
    expect(await only('stderr')).toEqual(['b: err']);
    expect(await only('none')).toEqual([]);
  });

  test('a changed input updates (runs create again, with the previous output in PULUMI_COMMAND_STDOUT); a dependency alone re-runs nothing', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const step = (v: number) =>
      program([
        { name: 'a', inputs: { create: `echo "v${v} after [$PULUMI_COMMAND_STDOUT]" | tee -a ${dir}/a` } },
        { name: 'b', inputs: { create: `echo b >> ${dir}/b` }, dependsOn: ['a'] },
      ]);
    succeeded(await engine.up(step(1)));
    expect(ran(succeeded(await engine.up(step(2))))).toEqual(['update a']);
    expect(readFileSync(path.join(dir, 'a'), 'utf8')).toBe('v1 after []\nv2 after [v1 after []]\n');
    expect(readFileSync(path.join(dir, 'b'), 'utf8')).toBe('b\n');
  });

  test('changed triggers replace: the new one is created, then the old one deleted with its own inputs', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const step = (t: string) => program([{ name: 'a', inputs: { create: `echo create ${t} >> ${dir}/log`, delete: `echo delete ${t} >> ${dir}/log`, triggers: [t] } }]);
    succeeded(await engine.up(step('one')));
    expect(ran(succeeded(await engine.up(step('two'))))).toEqual(['replace a', 'delete a']);
    expect(readFileSync(path.join(dir, 'log'), 'utf8')).toBe('create one\ncreate two\ndelete one\n');
  });

  test('a failed update keeps the old state and stops its dependents; the next up retries both', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const step = (v: number, fail: boolean) =>
      program([
        { name: 'a', inputs: { create: `echo a${v} >> ${dir}/log${fail ? '; echo broken >&2; exit 3' : ''}` } },
        { name: 'b', inputs: { create: `echo b${v} >> ${dir}/log` }, dependsOn: ['a'] },
      ]);
    succeeded(await engine.up(step(1, false)));
    const failed = await engine.up(step(2, true));
    expect(ran(failed.steps)).toEqual([]);
    expect(failed.failed).toMatchObject({ name: 'a', op: 'update' });
    expect(failed.failed!.message).toBe(`Process exited with status 3: running "echo a2 >> ${dir}/log; echo broken >&2; exit 3":\nbroken\n`);
    expect(engine.state.get('a')!.inputs.create).toBe(`echo a1 >> ${dir}/log`);
    expect(ran(succeeded(await engine.up(step(2, false))))).toEqual(['update a', 'update b']);
    expect(readFileSync(path.join(dir, 'log'), 'utf8')).toBe('a1\nb1\na2\na2\nb2\n');
  });

  test('independent resources run at the same time; one that depends on both waits for both', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    // Each waits (10 s at most) for the other to have started: run one at a time, the first would fail.
    const meet = (me: string, other: string) => `touch ${dir}/${me}; for i in $(seq 100); do test -e ${dir}/${other} && exit 0; sleep 0.1; done; exit 1`;
    const p = program([
      { name: 'a', inputs: { create: meet('a', 'b') } },
      { name: 'b', inputs: { create: meet('b', 'a') } },
      { name: 'c', inputs: { create: `test -e ${dir}/a && test -e ${dir}/b && touch ${dir}/c` }, dependsOn: ['a', 'b'] },
    ]);
    const steps = succeeded(await engine.up(p));
    expect(ran(steps).sort()).toEqual(['create a', 'create b', 'create c']);
    expect(ran(steps)[2]).toBe('create c');
  });

  test('after a failure no new step starts; a step already running finishes and is saved', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const p = (aFails: boolean) => program([
      { name: 'a', inputs: { create: `echo $$ > ${dir}/a-pid; touch ${dir}/a-started${aFails ? '; echo broken >&2; exit 3' : ''}` } },
      // Still running when a fails: b starts with a, and ends only after a's shell has exited (and 2 s for its
      // channel to close), so the engine has seen the failure before b is done.
      { name: 'b', inputs: { create: `for i in $(seq 100); do test -e ${dir}/a-started && break; sleep 0.1; done; while kill -0 "$(cat ${dir}/a-pid)" 2>/dev/null; do sleep 0.1; done; sleep 2; touch ${dir}/b` } },
      { name: 'c', inputs: { create: `touch ${dir}/c` }, dependsOn: ['b'] },
    ]);
    const result = await engine.up(p(true));
    expect(result.failed).toMatchObject({ name: 'a', op: 'create' });
    expect(ran(result.steps)).toEqual(['create b']);
    expect(existsSync(path.join(dir, 'b'))).toBe(true);
    expect(existsSync(path.join(dir, 'c'))).toBe(false);
    // b was saved: the next up creates a and c only.
    expect(ran(succeeded(await engine.up(p(false)))).sort()).toEqual(['create a', 'create c']);
  });

  test('a failed create saves nothing: the next up creates it again', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    const p = program([{ name: 'a', inputs: { create: `echo try >> ${dir}/log; test -e ${dir}/ok` } }]);
    expect((await engine.up(p)).failed).toMatchObject({ name: 'a', op: 'create' });
    expect(engine.state.has('a')).toBe(false);
    writeFileSync(path.join(dir, 'ok'), '');
    expect(ran(succeeded(await engine.up(p)))).toEqual(['create a']);
    expect(readFileSync(path.join(dir, 'log'), 'utf8')).toBe('try\ntry\n');
  });

  test('a copy updates only when its source or remotePath changes; a changed source copies again', async () => {
    const dir = remoteDir();
    const src = tempDir('copy-src');
    writeFileSync(path.join(src, 'x'), '1');
    const engine = new Engine();
    const p = (remotePath: string) => program([{ name: 'c', type: COPY, inputs: { source: new pulumi.asset.FileArchive(src), remotePath, triggers: ['m1'] } }]);
    expect(ran(succeeded(await engine.up(p(dir))))).toEqual(['create c']);
    expect(ran(succeeded(await engine.up(p(dir))))).toEqual([]);
    writeFileSync(path.join(src, 'x'), '2');
    expect(ran(succeeded(await engine.up(p(dir))))).toEqual(['update c']);
    expect(readFileSync(path.join(dir, path.basename(src), 'x'), 'utf8')).toBe('2');
  });

  test('destroy runs every delete, dependents first, their output logged like any step\'s', async () => {
    const dir = remoteDir();
    const engine = new Engine();
    succeeded(
      await engine.up(
        program([
          { name: 'a', inputs: { create: 'true', delete: `echo a >> ${dir}/log; echo deleted a` } },
          { name: 'b', inputs: { create: 'true', delete: `echo b >> ${dir}/log; echo deleted b` }, dependsOn: ['a'] },
          { name: 'c', inputs: { create: 'true' }, dependsOn: ['b'] },
        ]),
      ),
    );
    const destroyed = await engine.destroy();
    expect(ran(succeeded(destroyed))).toEqual(['delete c', 'delete b', 'delete a']);
    expect(destroyed.output!.map((o) => [o.resource, o.line])).toEqual([['b', 'deleted b'], ['a', 'deleted a']]);
    expect(readFileSync(path.join(dir, 'log'), 'utf8')).toBe('b\na\n');
    expect(engine.state.size).toBe(0);
  });

  test('hostKey: the right key connects; a wrong one fails before anything runs', async () => {
    const dir = remoteDir();
    const ok = await dial({ ...connection, hostKey: sshd.hostKey });
    expect((await execOn(ok, 'echo ok')).stdout).toBe('ok\n');
    ok.end();
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMn4nH7kQwDq3f0dF+Qm7uWfLzv9D4Vb1mCqbq8KQ7Pp wrong';
    const engine = new Engine();
    const result = await engine.up(program([{ name: 'a', inputs: { connection: { ...connection, hostKey: other, dialErrorLimit: 0 }, create: `touch ${dir}/ran` } }]));
    expect(result.failed!.message).toMatch(/host key mismatch/);
    expect(existsSync(path.join(dir, 'ran'))).toBe(false);
  });
});
