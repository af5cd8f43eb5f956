// Types of load.mjs for the TypeScript tests.
export interface LoadOptions {
  concurrency?: number;
  maxRequests?: number;
  maxMs?: number;
  timeoutMs?: number;
  pauseAfterFailureMs?: number;
}

export interface LoadReport {
  url: string;
  concurrency: number;
  requests: number;
  failures: number;
  failuresByCode: Record<string, number>;
  /** Longest time in which no request succeeded. */
  longestGapMs: number;
  ms: number;
}

export function startLoad(url: string, options?: LoadOptions): { stop(): Promise<LoadReport> };
