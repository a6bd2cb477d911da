export declare function appSourcesId(appDir?: string): string;
export declare function releaseToolSourcesId(): string;
