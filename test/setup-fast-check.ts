// Property tests explore new inputs on every local run; CI uses one fixed seed so that a verdict
// is reproducible. FC_SEED pins a seed anywhere (fast-check prints the seed of any failure).
import fc from "fast-check";

const seed = process.env.FC_SEED ?? (process.env.CI ? "20261125" : undefined);
if (seed !== undefined) fc.configureGlobal({ seed: Number(seed) });
