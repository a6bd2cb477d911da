export type Pm2Process = { name: string; pid: number; pm_id: number; pm2_env: { status: string; restart_time: number; pm_exec_path?: string; [key: string]: unknown } };
export declare function parseJlist(out: string): Pm2Process[];
