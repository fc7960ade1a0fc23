/*
 * postconf-master.test - golden tests for master.cf parsing and postconf -M/-F/-P
 *
 * DESCRIPTION
 *   testdata/master-cf: master.cf in; problems, then postconf -M, -Mf, -F
 *   and -P output out.
 */
import { goldenTests } from "../../testing/golden.js";
import { Config } from "../../global/config.js";
import { showEntries, showFields, showParams } from "./postconf-master.js";

goldenTests(import.meta.url, "testdata/master-cf", (input) => {
  const file = "/etc/postern/master.cf";
  const cfg = Config.fromText("/etc/postern", "", input);
  let out = "";
  for (const p of cfg.problems()) out += `problem: ${p}\n`;
  out += "== -M\n" + showEntries(input, file, [], false);
  out += "== -Mf\n" + showEntries(input, file, [], true);
  out += "== -F\n" + showFields(input, file, [], false);
  out += "== -P\n" + showParams(input, file, [], false);
  return out;
});
