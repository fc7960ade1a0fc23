/*
 * wakeup - a timed wait that an event can end early
 *
 * SYNOPSIS
 *   readonly #wakeup = new Wakeup();
 *   sock.on("data", (d) => { ...; this.#wakeup.notify(); });
 *   while (nothing yet && time left) await this.#wakeup.wait(left);
 *
 * DESCRIPTION
 *   The readers of a connection (a frame, packet or reply queue filled by
 *   socket events) wait for "something happened or the time is up".
 *   wait(ms) resolves after ms, or at once when notify() is called during
 *   the wait; a notify() with nobody waiting does nothing (the reader
 *   looks at its queue before it waits). One waiter at a time.
 */

export class Wakeup {
  #wake: (() => void) | null = null;

  /** Ends the current wait, if any. */
  notify(): void {
    this.#wake?.();
  }

  /** Waits up to ms, or until notify(). */
  async wait(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.#wake = null;
  }
}
