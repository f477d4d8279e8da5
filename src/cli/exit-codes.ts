// The CLI's exit codes, the same for every command: 0 success; 1 an execution that
// `run --wait` watched ended `failed` or `stopped`; 2 bad usage, a configuration or
// database problem, or an error answered by the API (its message on stderr).
export const EXIT = { ok: 0, executionFailed: 1, usageOrApiError: 2 } as const;
