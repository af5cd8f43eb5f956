import { it } from "vitest";
import fc from "fast-check";
import path from "node:path";
import { readdirSync } from "node:fs";
import { manifestArb, plan, writePlan, tempDir, run } from "./support.js";
it("sc", () => {
  const work = tempDir("dg-sc-");
  let n = 0;
  const samples = fc.sample(manifestArb(path.join(work, "c"), () => n++, path.join(work, "abs")), 60);
  const dirs: string[] = [];
  samples.forEach((m, i) => { const out = writePlan(path.join(work, `r${i}`), plan(m)); dirs.push(path.join(out, "scripts")); });
  const seen = new Map<string, string>();
  for (const d of dirs) {
    const files = readdirSync(d).filter((f) => f.endsWith(".sh") && !f.startsWith("deploygen-lib"));
    const r = run("shellcheck", ["-x", "-S", "style", "-f", "gcc", ...files], { cwd: d });
    for (const line of r.stdout.toString().split("\n").filter(Boolean)) { const code = /\[(SC\d+)\]/.exec(line)?.[1] ?? line; if (!seen.has(code)) seen.set(code, line.slice(0, 400)); }
  }
  console.log([...seen.values()].join("\n")); for (const d of dirs) { const r = run("shellcheck", ["-S", "style", "-f", "gcc", ...readdirSync(d).filter((f) => f.startsWith("deploy-"))], { cwd: d }); const m = /:(\d+):\d+: note: Want to escape/.exec(r.stdout.toString()); if (m) { const file = r.stdout.toString().split(":")[0]; console.log(require("node:fs").readFileSync(path.join(d, file), "utf8").split("\n")[Number(m[1]) - 1]); break; } }
}, 600_000);
