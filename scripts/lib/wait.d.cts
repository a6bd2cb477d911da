export declare function sleep(ms: number): Promise<void>;
export declare function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts?: { timeoutMs?: number; intervalMs?: number },
): Promise<T>;
