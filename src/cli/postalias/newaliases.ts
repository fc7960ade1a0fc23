/*
 * newaliases - entry point of the newaliases command (see postalias-run.ts)
 *
 * SYNOPSIS
 *   newaliases [-c config_dir] [-v]
 *
 * DESCRIPTION
 *   Rebuilds every table that alias_database lists, as postalias does.
 */
import { ToolOutput, toolExit } from "../../global/dict-tool.js";
import { newaliases } from "./postalias-run.js";

await toolExit(new ToolOutput(), newaliases(process.argv.slice(2)));
