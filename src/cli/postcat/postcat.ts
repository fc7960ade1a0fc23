/*
 * postcat - entry point of the postcat command (see postcat-run.ts)
 */
import { ConfigError } from "../../global/config.js";
import { PostcatError, postcat } from "./postcat-run.js";

/** Entry point: maps failures to messages and exit codes. */
async function main(): Promise<void> {
  try {
    process.exitCode = await postcat(process.argv.slice(2));
  } catch (err) {
    if (err instanceof PostcatError || err instanceof ConfigError) {
      process.stderr.write(`postcat: fatal: ${err.message}\n`);
      process.exitCode = 1;
    } else throw err;
  }
}

await main();
