/*
 * postsuper - entry point of the postsuper command (see postsuper-run.ts)
 */
import { ConfigError } from "../../global/config.js";
import { postsuper } from "./postsuper-run.js";

/** Entry point: maps failures to messages and exit codes. */
async function main(): Promise<void> {
  try {
    process.exitCode = await postsuper(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`postsuper: fatal: ${err.message}\n`);
      process.exitCode = 1;
    } else throw err;
  }
}

await main();
