/**
 * Test-only: pgBackRest's backup.info, rewritten as pgBackRest would have written it had its backups ended earlier,
 * so that the VM tier proves the time-based retention (repo1-retention-full-type=time) without waiting days.
 *
 * The format, from pgBackRest 2.55.1 (Debian 13's), src/info/info.c: INI sections of `key=JSON value` lines, and in
 * [backrest] a `backrest-checksum`: the SHA-1 of every other line rendered as one JSON object,
 * {"section":{"key":value,...},...}, in file order (infoNewLoad computes it on load and refuses a mismatch, then tries
 * backup.info.copy). A backup is a line of [backup:current], its label the key; expire reads only its
 * backup-timestamp-stop (src/command/expire/expire.c, expireTimeBasedBackup).
 */
import { createHash } from 'node:crypto';

type Line = { section: string; key: string; value: string };

function lines(text: string): Line[] {
  let section = '';
  const out: Line[] = [];
  for (const raw of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(raw);
    if (header) section = header[1];
    else if (raw !== '') {
      const eq = raw.indexOf('=');
      if (eq < 1 || !section) throw new Error(`not a pgBackRest info line: ${raw}`);
      out.push({ section, key: raw.slice(0, eq), value: raw.slice(eq + 1) });
    }
  }
  return out;
}

const isChecksum = (l: Line) => l.section === 'backrest' && l.key === 'backrest-checksum';

/** The checksum pgBackRest computes over an info file's text (what its backrest-checksum must say). */
export function infoChecksum(text: string): string {
  let json = '{';
  let section = '';
  for (const l of lines(text).filter((x) => !isChecksum(x))) {
    if (l.section !== section) {
      json += `${section ? '},' : ''}${JSON.stringify(l.section)}:{`;
      section = l.section;
    } else json += ',';
    json += `${JSON.stringify(l.key)}:${l.value}`;
  }
  return createHash('sha1').update(`${json}}}`).digest('hex');
}

/** The checksum an info file's text states. */
export function statedChecksum(text: string): string {
  const line = lines(text).find(isChecksum);
  if (!line) throw new Error('no backrest-checksum in the info file');
  return JSON.parse(line.value) as string;
}

/**
 * backup.info's text with each listed backup's start and stop moved `seconds` earlier (label → seconds), the rest as
 * it was, and its checksum made again. Labels stay: pgBackRest orders backups by label, which the moves keep.
 */
export function backdated(text: string, shifts: Record<string, number>): string {
  const pending = new Set(Object.keys(shifts));
  const moved = text.split('\n').map((raw) => {
    const eq = raw.indexOf('=');
    const label = raw.slice(0, eq);
    if (eq < 1 || !pending.has(label)) return raw;
    pending.delete(label);
    const data = raw.slice(eq + 1).replace(/"backup-timestamp-(start|stop)":(\d+)/g, (_, which: string, at: string) => `"backup-timestamp-${which}":${Number(at) - shifts[label]}`);
    return `${label}=${data}`;
  });
  if (pending.size) throw new Error(`no backup ${[...pending].join(', ')} in backup.info`);
  const out = moved.join('\n');
  return out.replace(/^backrest-checksum=.*$/m, `backrest-checksum=${JSON.stringify(infoChecksum(out))}`);
}
