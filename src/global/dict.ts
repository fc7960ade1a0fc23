/*
 * dict - lookup tables ("type:name"), the public entry point
 *
 * SYNOPSIS
 *   import { dictOpen, DictFlag } from "../global/dict.js";
 *
 *   const access = dictOpen("hash:/etc/postfix/access", { flags: DictFlag.FOLD_FIX });
 *   const r = await access.lookup("example.com");
 *   if (r.status === "found") ...; else if (r.status === "tempfail") defer(r.reason);
 *   access.close();
 *
 *   dictRegister("pgsql", (name, flags) => ...);        // add a table type
 *
 * DESCRIPTION
 *   Importing this module registers the embedded table types:
 *     texthash  postmap source file, read into memory      dict-texthash.ts
 *     inline, static, randmap, environ, fail               dict-inline.ts
 *     unionmap, pipemap                                    dict-union.ts
 *     cidr                                                 dict-cidr.ts
 *     regexp, pcre (linear-time matching)                  dict-regexp.ts
 *     hash, btree, lmdb (Postern's indexed file format)    dict-db.ts
 *     cdb (D. J. Bernstein's format)                       dict-cdb.ts
 *     unix (passwd.byname, group.byname)                   dict-unix.ts
 *   Server types (pgsql, ldap, proxy, ...) register themselves through
 *   dictRegister() without changes here.
 *
 *   dictOpen() shares one instance per name and flags in a process
 *   (dict-registry.ts); file tables reload when their file changes
 *   (dict-file.ts). A table that cannot be used answers every lookup with
 *   a temporary failure, never with "not found".
 *
 *   Search orders with Postfix semantics (address, domain, client, transport
 *   lookups over one or more tables) are in dict-search.ts; building table
 *   files (postmap) is in dict-mkmap.ts.
 */
import { cdbOpen } from "./dict-cdb.js";
import { cidrOpen } from "./dict-cidr.js";
import { dbOpenFor } from "./dict-db.js";
import { environOpen, failOpen, inlineOpen, randmapOpen, staticOpen } from "./dict-inline.js";
import { pcreOpen, regexpOpen } from "./dict-regexp.js";
import { dictRegister, dictTypeKnown } from "./dict-registry.js";
import { texthashOpen } from "./dict-texthash.js";
import { pipemapOpen, unionmapOpen } from "./dict-union.js";
import type { DictOpenFn } from "./dict-types.js";
import "./dict-proxy.js";
import "./dict-servers.js";
import "./dict-unix.js";

export {
  dictCloseAll,
  dictOpen,
  dictRegister,
  dictSplitName,
  dictSurrogate,
  dictTypes,
} from "./dict-registry.js";
export { dictSetRecheckInterval } from "./dict-file.js";
export {
  DICT_DEFAULT_FLAGS,
  DictFlag,
  dictFlagNames,
  found,
  NOT_FOUND,
  notFound,
  tempFail,
  type Dict,
  type DictImpl,
  type DictOpenFn,
  type DictResult,
} from "./dict-types.js";

const BUILTIN: [string, DictOpenFn][] = [
  ["texthash", texthashOpen],
  ["inline", inlineOpen],
  ["static", staticOpen],
  ["randmap", randmapOpen],
  ["environ", environOpen],
  ["fail", failOpen],
  ["unionmap", unionmapOpen],
  ["pipemap", pipemapOpen],
  ["cidr", cidrOpen],
  ["regexp", regexpOpen],
  ["pcre", pcreOpen],
  ["hash", dbOpenFor("hash")],
  ["btree", dbOpenFor("btree")],
  ["lmdb", dbOpenFor("lmdb")],
  ["cdb", cdbOpen],
];

for (const [type, open] of BUILTIN) if (!dictTypeKnown(type)) dictRegister(type, open);
