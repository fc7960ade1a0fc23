import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Config } from "./config.js";
import { JAIL_EXEC_DIR, jailArgv, parseLdd } from "./jail.js";
import { jailReadFiles } from "./jail-files.js";

test("parseLdd keeps the paths the loader will open, and the loader itself", () => {
  const text = [
    "\tlinux-vdso.so.1 (0x00007ffc6a1f2000)",
    "\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f5b0c400000)",
    "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f5b0c21f000)",
    "\t/lib64/ld-linux-x86-64.so.2 (0x00007f5b0f2f1000)",
  ].join("\n");
  assert.deepEqual(parseLdd(text), [
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2",
  ]);
});

test("jailArgv: the queue read-write, keys and tables read-only, parents passable, Node alone in its directory", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "jail-unit-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const etc = join(dir, "etc");
  const queue = join(dir, "spool");
  mkdirSync(etc);
  mkdirSync(queue);
  const key = join(etc, "key.pem");
  writeFileSync(key, "k");
  chmodSync(key, 0o600);
  writeFileSync(join(etc, "access"), "a");
  writeFileSync(join(etc, "access.db"), "d");
  writeFileSync(join(etc, "proxied"), "p");
  const cfg = Config.fromText(
    etc,
    `queue_directory = ${queue}\nsmtpd_tls_key_file = ${key}\n` +
      `smtpd_client_restrictions = check_client_access hash:${etc}/access, check_sender_access proxy:hash:${etc}/proxied\n` +
      "maillog_file = /var/log/secret-log\n",
  );
  const files = jailReadFiles(cfg);
  assert.ok(files.includes(key));
  assert.ok(files.includes(`${etc}/access`) && files.includes(`${etc}/access.db`));
  assert.ok(!files.includes(`${etc}/proxied`), "proxy: tables are proxymap's");
  assert.ok(!files.some((f) => f.includes("secret-log")));

  const argv = jailArgv(
    { program: "/usr/bin/bwrap", runtime: ["/usr/bin/node"], rootless: false },
    cfg,
    "smtpd",
  );
  const text = argv.join(" ");
  assert.match(text, new RegExp(`--bind ${queue} ${queue}`));
  assert.match(text, new RegExp(`--ro-bind ${etc} ${etc}`));
  assert.doesNotMatch(text, /--unshare-user/);
  assert.match(text, /--perms 0755 --dir \/tmp /, "parents are made passable");
  assert.deepEqual(argv.slice(-7), [
    "--ro-bind",
    "/usr/bin/node",
    `${JAIL_EXEC_DIR}/node`,
    "--chdir",
    queue,
    "--",
    `${JAIL_EXEC_DIR}/node`,
  ]);
  // The key is inside the configuration directory, which is bound already: no bind of its own.
  assert.ok(!argv.includes(key));
  const rootless = jailArgv(
    { program: "/usr/bin/bwrap", runtime: ["/usr/bin/node"], rootless: true },
    cfg,
    "smtpd",
  );
  assert.ok(rootless.includes("--unshare-user"));
});
