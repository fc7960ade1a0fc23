/*
 * capabilities - what this build supports, for postconf -a and -A
 *
 * DESCRIPTION
 *   Lists the SASL server (-a) and client (-A) implementations that this
 *   Postern provides (the lookup table types of -m come from the table
 *   registry, dict.ts; the mailbox lock methods of -l from mbox-conf.ts). Each feature registers itself here when it lands, so that the
 *   lists never claim something that is not there.
 */

import { SASL_CLIENT_TYPES, SASL_SERVER_TYPES } from "./sasl-types.js";

const registered = { a: new Set<string>(SASL_SERVER_TYPES), A: new Set<string>(SASL_CLIENT_TYPES) };

export type CapabilityKind = keyof typeof registered;

/** Registers a capability (a table type, lock method or SASL type). */
export function registerCapability(kind: CapabilityKind, name: string): void {
  registered[kind].add(name);
}

/** The sorted list of one kind of capability. */
export function capabilityList(kind: CapabilityKind): string[] {
  return [...registered[kind]].sort();
}
