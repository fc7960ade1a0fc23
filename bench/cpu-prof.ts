/*
 * cpu-prof - a CPU profile of a daemon, for benchmarks (node --import)
 *
 * SYNOPSIS
 *   BENCH_NODE_OPTIONS=--import=$PWD/dist/bench/cpu-prof.js node dist/bench/qmgr.js --messages 20000
 *
 * DESCRIPTION
 *   Node 20 does not accept --cpu-prof in NODE_OPTIONS, which is how the
 *   benchmarks pass options to the daemons master starts (through
 *   import_environment). Loaded with --import, this module starts V8's
 *   sampling profiler through node:inspector and, when the process exits,
 *   writes the profile to $TMPDIR/postern-cpuprof-<program>-<pid>.cpuprofile
 *   (open it in Chrome's DevTools or read it with any .cpuprofile tool).
 *   A process killed by a signal writes nothing; master's daemons exit
 *   through process.exit() when retired or stopped. For benchmarks only.
 */
import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: 250 });
session.post("Profiler.start");
process.on("exit", () => {
  const program = basename(process.argv[1] ?? "node").replace(/\.js$/, "");
  const file = join(tmpdir(), `postern-cpuprof-${program}-${process.pid}.cpuprofile`);
  // An in-process inspector session answers synchronously, so this runs before the process ends.
  session.post("Profiler.stop", (err, res) => {
    if (err === null) writeFileSync(file, JSON.stringify(res.profile), { mode: 0o644 });
  });
});
