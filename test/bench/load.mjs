// A bounded HTTP load on one URL, for measuring what a redeploy does to an app that serves:
// `concurrency` loops each doing GETs one after another on fresh connections (no keep-alive, so a
// graceful shutdown is never held up by an idle connection), until stopped, or until `maxRequests`
// requests or `maxMs` milliseconds. Shared by test/e2e/redeploy.e2e.test.ts and test/bench/deploy.mjs.
import http from "node:http";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One GET; resolves to { ok, code } and never throws. ok: a 2xx answer whose body was read. */
function get(url, timeoutMs) {
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: "close" } }, (response) => {
      response.resume();
      response.on("end", () => resolve({ ok: response.statusCode >= 200 && response.statusCode < 300, code: `HTTP ${response.statusCode}` }));
      response.on("error", (error) => resolve({ ok: false, code: error.code ?? error.message }));
    });
    request.on("timeout", () => request.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    request.on("error", (error) => resolve({ ok: false, code: error.code ?? error.message }));
  });
}

/**
 * Starts the load; `stop()` ends it and resolves to the report:
 * { url, concurrency, requests, failures, failuresByCode, longestGapMs, ms }, where longestGapMs is
 * the longest time in which no request succeeded (from the start, between successes, to the end).
 */
export function startLoad(url, { concurrency = 4, maxRequests = 50_000, maxMs = 180_000, timeoutMs = 5_000, pauseAfterFailureMs = 5 } = {}) {
  const started = Date.now();
  let stopped = false;
  let requests = 0;
  let failures = 0;
  let lastSuccess = started;
  let longestGapMs = 0;
  const failuresByCode = {};
  const loop = async () => {
    while (!stopped && requests < maxRequests && Date.now() - started < maxMs) {
      requests += 1;
      const result = await get(url, timeoutMs);
      const now = Date.now();
      if (result.ok) {
        longestGapMs = Math.max(longestGapMs, now - lastSuccess);
        lastSuccess = now;
      } else {
        failures += 1;
        failuresByCode[result.code] = (failuresByCode[result.code] ?? 0) + 1;
        await sleep(pauseAfterFailureMs);
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      const ended = Date.now();
      return {
        url,
        concurrency,
        requests,
        failures,
        failuresByCode,
        longestGapMs: Math.max(longestGapMs, ended - lastSuccess),
        ms: ended - started,
      };
    },
  };
}
