// DOM helpers of the UI. User text only ever reaches the page as text
// nodes: h() sets textContent, and linkify() builds anchors from parsed
// http(s) URLs, never markup from strings.

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element with attributes (strings, or booleans for flags) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") el.className = v as string;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/** Gets an element that index.html is known to have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[)\]}.,;:!?'"]+$/;

/**
 * Appends text to parent as text nodes, with http and https URLs as links
 * that open in a new tab without a referrer or a handle on this page.
 */
export function linkify(parent: HTMLElement, text: string): void {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0];
    const start = m.index ?? 0;
    // Trailing punctuation usually ends the sentence, not the URL; keep a
    // closing parenthesis that has its opening one inside the URL.
    const trail = raw.match(TRAILING);
    if (trail) {
      let cut = trail[0];
      if (cut.startsWith(")") && raw.includes("(")) cut = cut.slice(1);
      raw = raw.slice(0, raw.length - cut.length);
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    parent.append(h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, raw));
    last = start + raw.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** The time of day of ts, in the viewer's locale. */
export function formatTime(ts: number): string {
  return timeFmt.format(ts);
}

/** Date and time of ts in full, in the viewer's locale. */
export function formatFull(ts: number): string {
  return fullFmt.format(ts);
}

/** The local calendar day of ts as YYYY-MM-DD. */
export function dayKey(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** A day separator's label: "Today", "Yesterday" or the date, in the viewer's locale. */
export function formatDay(ts: number, now = Date.now()): string {
  const days = Math.round((startOfDay(ts) - startOfDay(now)) / 86_400_000);
  if (days === 0 || days === -1) {
    const s = relFmt.format(days, "day");
    return s.charAt(0).toLocaleUpperCase() + s.slice(1);
  }
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
  return (sameYear ? dayFmt : dayYearFmt).format(ts);
}

function startOfDay(ts: number): number {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** A stable colour class (c0–c7) for a user name. */
export function colorClass(name: string): string {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return "c" + (x % 8);
}

/** The initial shown in a user's avatar. */
export function initial(name: string): string {
  return name.charAt(0).toUpperCase();
}
