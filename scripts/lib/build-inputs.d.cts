export declare function appSourcesId(appDir?: string): string;
export declare function sourcesId(files: string[]): string;
export declare const RELEASE_TOOL_BANNER: string;
export declare function releaseToolStamp(firstLine: string): { id: string; inputs: string[] } | undefined;
