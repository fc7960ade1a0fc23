/*
 * postalias - entry point of the postalias command (see postalias-run.ts)
 */
import { ToolOutput, toolExit } from "../../global/dict-tool.js";
import { postalias } from "./postalias-run.js";

const out = new ToolOutput();
await toolExit(out, await postalias(process.argv.slice(2), out));
