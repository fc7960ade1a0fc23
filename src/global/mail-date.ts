/*
 * mail-date - dates as message headers write them (RFC 5322)
 *
 * DESCRIPTION
 *   "Fri, 20 Nov 2026 22:30:00 +0000 (UTC)": local time, numeric zone, and
 *   the zone's name in a comment, as Postfix writes Date: and Received:.
 */
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

let zoneFormat: Intl.DateTimeFormat | null = null;
/** The last date formatted: the same second gives the same text (a Received: header per message). */
let last = { ms: NaN, text: "" };

/** The current time as an RFC 5322 date with the zone name: "Fri, 20 Nov 2026 22:30:00 +0000 (UTC)". */
export function rfc5322Date(d = new Date()): string {
  const ms = d.getTime();
  if (Math.floor(ms / 1000) === Math.floor(last.ms / 1000)) return last.text;
  const text = format(d);
  last = { ms, text };
  return text;
}

/** Formats a date (see rfc5322Date). */
function format(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  zoneFormat ??= new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  const name = zoneFormat.formatToParts(d).find((p) => p.type === "timeZoneName")?.value;
  return `${DAYS[d.getDay()]}, ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zone}${name ? ` (${name})` : ""}`;
}
