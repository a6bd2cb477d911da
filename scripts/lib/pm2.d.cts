export declare const PM2_BIN: string;
export declare function pm2(args: string[], opts?: { env?: NodeJS.ProcessEnv; allowFailure?: boolean; inherit?: boolean }): string;
import type { Pm2Process } from './pm2-list.cjs';
export type { Pm2Process };
export declare function pm2List(env?: NodeJS.ProcessEnv): Pm2Process[];
export declare function pm2Async(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<string>;
export { parseJlist } from './pm2-list.cjs';
