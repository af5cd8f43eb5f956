// Every generated artifact of every snapshot fixture, as a real file reviewers can read:
// test/__generated__/<fixture>/<output>/<file>. Regenerate with `npx vitest run -u`.
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import path from "node:path";
import { planFixture, FIXTURES, SNAPSHOT_FIXTURES } from "./helpers/generate.js";

for (const fixture of SNAPSHOT_FIXTURES.filter((name) => existsSync(path.join(FIXTURES, name)))) {
  describe(`generated files of fixtures/${fixture}`, async () => {
    const plan = await planFixture(fixture);
    it("produces the expected set of files", () => {
      expect(plan.files.map((file) => `${file.mode.toString(8)} ${file.path}`)).toMatchSnapshot();
    });
    for (const file of plan.files) {
      it(file.path, async () => {
        await expect(file.content).toMatchFileSnapshot(`__generated__/${fixture}/${plan.output}/${file.path}`);
      });
    }
  });
}
