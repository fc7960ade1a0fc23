/*
 * postconf - entry point of the postconf command (see postconf-run.ts)
 */
import { ConfigError } from "../../global/config.js";
import { PostconfError } from "./postconf-master.js";
import { postconf } from "./postconf-run.js";

/** Entry point: maps failures to messages and exit codes. */
async function main(): Promise<void> {
  try {
    process.exitCode = await postconf(process.argv.slice(2));
  } catch (err) {
    if (err instanceof PostconfError || err instanceof ConfigError) {
      process.stderr.write(`postconf: fatal: ${err.message}\n`);
      process.exitCode = 1;
    } else throw err;
  }
}

await main();
