import { test } from "node:test";
import assert from "node:assert/strict";
import { waitingBudget } from "./master-waiting.js";

test("master holds as many waiting connections as the open-file limit allows, less a reserve", () => {
  assert.equal(waitingBudget(1024), 1000, "never fewer than before");
  assert.equal(waitingBudget(20000), 15000);
  assert.equal(waitingBudget(4096), 3072);
  assert.equal(waitingBudget(1_048_576), 100_000, "capped for memory");
});
