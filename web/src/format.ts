// Small helpers to show the core's values to people: times, usernames,
// errors, safety numbers.

/** The server's username rule, checked here only to answer early. */
export const usernamePattern = /^[a-z0-9_.-]{3,32}$/;

export const usernameRule =
  "3–32 characters: lowercase letters, digits, and _ . -";

/** The message of a rejected promise (a ParleyError or anything else). */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === "string") return e;
  return String(e);
}

/** s with a capital first letter, for an error shown on its own. */
export function sentence(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The kind of a ParleyError ("" when it is not one). */
export function errorKind(e: unknown): string {
  const k = (e as { kind?: unknown } | null)?.kind;
  return typeof k === "string" ? k : "";
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const yearFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const longDayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function startOfDay(t: number): number {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

const day = 24 * 60 * 60 * 1000;

/** A time of day, e.g. "14:05". */
export function clock(t: number): string {
  return t ? timeFmt.format(t) : "";
}

/** A short time for the conversation list: the time today, the weekday this
 * week, else the date. */
export function shortTime(t: number, now = Date.now()): string {
  if (!t) return "";
  const today = startOfDay(now);
  if (t >= today) return timeFmt.format(t);
  if (t >= today - 6 * day) return weekdayFmt.format(t);
  if (new Date(t).getFullYear() === new Date(now).getFullYear()) return dateFmt.format(t);
  return yearFmt.format(t);
}

/** The label of a day separator in the history. */
export function dayLabel(t: number, now = Date.now()): string {
  const today = startOfDay(now);
  const d = startOfDay(t);
  if (d === today) return "Today";
  if (d === startOfDay(today - 1)) return "Yesterday";
  if (new Date(t).getFullYear() === new Date(now).getFullYear()) return longDayFmt.format(t);
  return yearFmt.format(t);
}

export function sameDay(a: number, b: number): boolean {
  return startOfDay(a) === startOfDay(b);
}

export function fullTime(t: number): string {
  return t ? fullFmt.format(t) : "";
}

/** 60 digits as 12 groups of 5. */
export function digitGroups(digits: string): string[] {
  const clean = digits.replace(/\D/g, "");
  const out: string[] = [];
  for (let i = 0; i < clean.length; i += 5) out.push(clean.slice(i, i + 5));
  return out;
}

/** A stable hue for a username's avatar. */
export function hue(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % 360;
}
