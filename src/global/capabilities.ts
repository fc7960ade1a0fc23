/*
 * capabilities - what this build supports, for postconf -m, -l, -a and -A
 *
 * DESCRIPTION
 *   Lists the lookup table types (-m), mailbox locking methods (-l), and
 *   SASL server (-a) and client (-A) implementations that this Postern
 *   provides. Each feature registers itself here when it lands, so that the
 *   lists never claim something that is not there.
 */

const registered = { m: new Set<string>(), l: new Set<string>(), a: new Set<string>(), A: new Set<string>() };

export type CapabilityKind = keyof typeof registered;

/** Registers a capability (a table type, lock method or SASL type). */
export function registerCapability(kind: CapabilityKind, name: string): void {
  registered[kind].add(name);
}

/** The sorted list of one kind of capability. */
export function capabilityList(kind: CapabilityKind): string[] {
  return [...registered[kind]].sort();
}
