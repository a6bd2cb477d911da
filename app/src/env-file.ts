import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { ConfigError } from './config';

/**
 * The process environment, plus the file named by CEMETERY_ENV_FILE (on a
 * host: shared/app.env, root's and 0640, written by provisioning). The app reads the file
 * itself, so its secrets never pass through PM2 (its process list, `pm2 env`,
 * dump.pm2) nor any process's environment; variables set in the environment
 * win, e.g. PORT for the release's health check.
 */
export function withEnvFile(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const file = env.CEMETERY_ENV_FILE;
  if (!file) return env;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  - CEMETERY_ENV_FILE ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { ...parseEnv(text), ...env };
}
