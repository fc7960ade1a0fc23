/*
 * postscreen-instance - postscreen in front of smtpd, for end-to-end tests
 *
 * SYNOPSIS
 *   const inst = await postscreenInstance(t, "postscreen_greet_wait = 1s\n");
 *   const c = await smtpConnect(inst.port, "127.0.0.2");
 *
 * DESCRIPTION
 *   As smtpdInstance (smtpd-instance.ts), but the loopback port is served
 *   by postscreen ("PORT inet n - n - 1 postscreen") and smtpd is the pass
 *   service behind it ("smtpd pass - - n - - smtpd"), the way Postfix
 *   configures them. The instance is aborted and removed when the test
 *   ends; restart() stops and starts it again on the same directory. The
 *   smtpd line may be replaced (a lower maxproc, -o settings).
 */
import assert from "node:assert/strict";
import { freePort, shippedEntries, startInstance, type Instance } from "./instance.js";
import type { TestContext } from "./smtpd-instance.js";

export interface PostscreenInstance extends Instance {
  port: number;
  restart(): Promise<void>;
}

/** Starts postscreen, smtpd (pass), cleanup and trivial-rewrite; extra main.cf text is appended. */
export async function postscreenInstance(
  t: TestContext,
  main = "",
  extraMaster = "",
  smtpd = "smtpd pass - - n - - smtpd",
): Promise<PostscreenInstance> {
  const port = await freePort();
  const inst = await startInstance(t, {
    main: [
      "myhostname = mx.example.org",
      "mydestination = $myhostname, example.org",
      "mynetworks = 192.0.2.0/24",
      "local_recipient_maps =",
      "smtpd_peername_lookup = no",
      main,
    ].join("\n"),
    master: [
      `${port} inet n - n - 1 postscreen`,
      smtpd,
      shippedEntries("cleanup", "rewrite"),
      extraMaster,
      "",
    ].join("\n"),
  });
  const restart = async (): Promise<void> => {
    assert.equal((await inst.stop()).code, 0);
    const again = await inst.start();
    assert.equal(again.code, 0, again.stderr);
  };
  return Object.assign(inst, { port, restart });
}
