/*
 * dict-servers - registers the table types that use servers
 *
 * SYNOPSIS
 *   import "../global/dict-servers.js";      // once, e.g. next to "../global/dict.js"
 *   dictOpen("pgsql:/etc/postfix/pgsql-aliases.cf")
 *
 * DESCRIPTION
 *   Importing this module registers, through dictRegister():
 *     pgsql      PostgreSQL                          dict-pgsql.ts
 *     mysql      MySQL, MariaDB                      dict-mysql.ts
 *     sqlite     SQLite database files               dict-sqlite.ts
 *     ldap       LDAP directories                    dict-ldap.ts
 *     memcache   memcached (with a backup table)     dict-memcache.ts
 *     socketmap  the Sendmail socketmap protocol     dict-socketmap.ts
 *     tcp        the Postfix tcp_table protocol      dict-tcp.ts
 *   The SQL and LDAP types share the client configuration file syntax
 *   (dict-cf.ts), the %-templates, domain filter and result lists
 *   (dict-expand.ts); the SQL types also share failover and key
 *   protection (dict-sql.ts); memcache, socketmap and tcp share a small
 *   bounded stream client (dict-netclient.ts).
 *
 *   A type that is already registered (e.g. by a test) is left alone.
 */
import { ldapOpen } from "./dict-ldap.js";
import { memcacheOpen } from "./dict-memcache.js";
import { mysqlOpen } from "./dict-mysql.js";
import { pgsqlOpen } from "./dict-pgsql.js";
import { dictRegister, dictTypeKnown } from "./dict-registry.js";
import { socketmapOpen } from "./dict-socketmap.js";
import { sqliteOpen } from "./dict-sqlite.js";
import { tcpOpen } from "./dict-tcp.js";
import type { DictOpenFn } from "./dict-types.js";

const SERVER_TYPES: [string, DictOpenFn][] = [
  ["pgsql", pgsqlOpen],
  ["mysql", mysqlOpen],
  ["sqlite", sqliteOpen],
  ["ldap", ldapOpen],
  ["memcache", memcacheOpen],
  ["socketmap", socketmapOpen],
  ["tcp", tcpOpen],
];

for (const [type, open] of SERVER_TYPES) if (!dictTypeKnown(type)) dictRegister(type, open);
