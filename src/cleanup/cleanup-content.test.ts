/*
 * cleanup-content.test - golden tests of cleanup's content and address processing
 *
 * DESCRIPTION
 *   Each .in file holds cases (see cleanup-testkit.ts) that run through
 *   the real session code; the .ref file is what the log, the reply and
 *   the queue file must show.
 *   testdata/checks   every header_checks and body_checks action
 *   testdata/map      canonical, virtual (recursion, limits, loops),
 *                     masquerading, BCC, duplicates, table failures
 *   testdata/mime     MIME structure: which checks see which lines,
 *                     nesting and boundary limits, 8-bit detection
 *   testdata/headers  header address rewriting (local and remote
 *                     contexts), folding, sendmail -t extraction
 */
import { goldenTests } from "../testing/golden.js";
import { runCleanupCases } from "./cleanup-testkit.js";

for (const dir of ["checks", "map", "mime", "headers"])
  goldenTests(import.meta.url, `testdata/${dir}`, runCleanupCases);
