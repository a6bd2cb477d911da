export declare const PM2_BIN: string;
export declare function pm2(args: string[], opts?: { env?: NodeJS.ProcessEnv; allowFailure?: boolean; inherit?: boolean }): string;
export type Pm2Process = { name: string; pid: number; pm_id: number; pm2_env: { status: string; restart_time: number; [key: string]: unknown } };
export declare function pm2List(env?: NodeJS.ProcessEnv): Pm2Process[];
export declare function pm2Async(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<string>;
export declare function parseJlist(out: string): Pm2Process[];
