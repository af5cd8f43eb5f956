// Every generated artifact of every snapshot fixture, as a real file reviewers can read:
// test/__generated__/<fixture>/<output>/<file>. Regenerate with `npx vitest run -u`.
// The library (deploygen-lib.sh) and the Node helper (deploygen-helper.cjs) are fixed files, the
// same in every project: they are snapshotted once, from the first fixture, and every other
// fixture must generate them byte for byte the same.
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import path from "node:path";
import { planFixture, FIXTURES, SNAPSHOT_FIXTURES } from "./helpers/generate.js";

const FIXED_FILES = ["scripts/deploygen-lib.sh", "scripts/deploygen-helper.cjs"];
const fixtures = SNAPSHOT_FIXTURES.filter((name) => existsSync(path.join(FIXTURES, name)));
const first = await planFixture(fixtures[0]!);

for (const fixture of fixtures) {
  describe(`generated files of fixtures/${fixture}`, async () => {
    const plan = fixture === fixtures[0] ? first : await planFixture(fixture);
    it("produces the expected set of files", () => {
      expect(plan.files.map((file) => `${file.mode.toString(8)} ${file.path}`)).toMatchSnapshot();
    });
    for (const file of plan.files) {
      if (FIXED_FILES.includes(file.path) && fixture !== fixtures[0]) {
        it(`${file.path} is byte for byte the one of fixtures/${fixtures[0]}`, () => {
          const same = first.files.find((candidate) => candidate.path === file.path);
          expect(same, file.path).toBeDefined();
          expect(file.content === same!.content, file.path).toBe(true);
          expect(file.mode).toBe(same!.mode);
        });
        continue;
      }
      it(file.path, async () => {
        await expect(file.content).toMatchFileSnapshot(`__generated__/${fixture}/${plan.output}/${file.path}`);
      });
    }
  });
}
