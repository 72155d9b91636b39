// The message list of one room: messages kept in id order whatever order
// they arrive in (live, caught up, older pages), each id once; day
// separators and sender grouping kept right around every insert; own
// messages from "sending" to "sent" (or "not sent").

import type { ChatMessage } from "../client/dist/index.js";
import { colorClass, dayKey, formatDay, formatFull, formatTime, h, initial, linkify } from "./dom.js";

/** The state of one of this user's messages. */
export type SendState = "pending" | "sent" | "failed";

interface Item {
  id: string;
  el: HTMLLIElement;
}

const GROUP_MS = 5 * 60_000;

export class RoomView {
  readonly list: HTMLOListElement;
  /** Oldest id shown, for paging back. */
  oldest?: string;
  /** Older messages exist on the server. */
  more = true;
  loading = false;
  /** The first page has been loaded. */
  loaded = false;
  unread = 0;
  /** user → Date.now() when their typing notice expires. */
  readonly typing = new Map<string, number>();
  /** Everyone seen writing here. */
  readonly authors = new Set<string>();
  /** The scroll position to restore when the room is shown again. */
  scrollTop = 0;
  atBottom = true;

  private items: Item[] = []; // sorted by id
  private byId = new Map<string, HTMLLIElement>();
  private byCid = new Map<string, HTMLLIElement>();
  private pendingTail: HTMLLIElement[] = []; // own messages without id yet, in send order

  constructor(
    readonly name: string,
    private readonly onRetry: (body: string, el: HTMLLIElement) => void,
  ) {
    this.list = h("ol", { class: "messages", "data-room": name, "aria-label": `Messages in ${name}` });
  }

  /** How many messages with an id are shown. */
  get size(): number {
    return this.items.length;
  }

  /** Shows one of this user's messages right away, before the server has it. */
  addPending(cid: string, body: string, user: string): HTMLLIElement {
    const el = messageEl({ room: this.name, id: "", user, body, ts: Date.now(), own: true, cid });
    setState(el, "pending");
    this.byCid.set(cid, el);
    this.pendingTail.push(el);
    this.list.append(el);
    this.fix(el);
    return el;
  }

  /**
   * Shows m in its place unless its id is already shown; an own message
   * with a known cid takes over its pending element. Returns true if m
   * was not shown before.
   */
  add(m: ChatMessage, state: SendState = "sent"): boolean {
    if (this.byId.has(m.id)) return false;
    this.authors.add(m.user);
    let el = m.cid ? this.byCid.get(m.cid) : undefined;
    let isNew = true;
    if (el && !el.dataset.id) {
      // Our own pending message: it keeps its state until the ack.
      isNew = false;
      this.detach(el);
      setTime(el, m.ts);
      state = (el.dataset.state as SendState) ?? state;
    } else {
      el = messageEl(m);
      if (m.own) setState(el, state);
      if (m.cid) this.byCid.set(m.cid, el);
    }
    el.dataset.id = m.id;
    this.byId.set(m.id, el);
    this.insert({ id: m.id, el });
    if (this.oldest === undefined || m.id < this.oldest) this.oldest = m.id;
    return isNew;
  }

  /** Marks this user's message cid as durable. */
  acked(cid: string, id: string, ts: number): void {
    const el = this.byCid.get(cid);
    if (!el) return;
    if (!el.dataset.id) this.add({ room: this.name, id, ts, user: el.dataset.user ?? "", body: "", own: true, cid });
    setState(el, "sent");
  }

  /** Marks this user's message cid as refused for good. */
  failed(cid: string, why: string): void {
    const el = this.byCid.get(cid);
    if (!el) return;
    setState(el, "failed", why, () => this.onRetry(el.querySelector(".body")?.textContent ?? "", el));
  }

  /** Removes an element (a failed message being retried). */
  remove(el: HTMLLIElement): void {
    if (el.dataset.cid) this.byCid.delete(el.dataset.cid);
    const id = el.dataset.id;
    if (id) {
      this.byId.delete(id);
      this.items = this.items.filter((i) => i.el !== el);
    }
    this.detach(el);
  }

  // detach takes el out of the list (and the pending tail), with a day
  // separator left without messages, and fixes the message after it.
  private detach(el: HTMLLIElement): void {
    const i = this.pendingTail.indexOf(el);
    if (i >= 0) this.pendingTail.splice(i, 1);
    const prev = el.previousElementSibling;
    let next = el.nextElementSibling as HTMLLIElement | null;
    el.remove();
    if (prev?.classList.contains("day") && (!next || next.classList.contains("day"))) prev.remove();
    if (next?.classList.contains("day")) next = next.nextElementSibling as HTMLLIElement | null;
    if (next) this.fix(next);
  }

  private insert(item: Item): void {
    // Binary search for the first shown message with a larger id.
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].id < item.id) lo = mid + 1;
      else hi = mid;
    }
    const next = this.items[lo]?.el ?? this.pendingTail[0];
    this.items.splice(lo, 0, item);
    if (next) {
      // Before next's day separator, if it has one.
      const before = next.previousElementSibling?.classList.contains("day") ? next.previousElementSibling : next;
      this.list.insertBefore(item.el, before);
    } else {
      this.list.append(item.el);
    }
    this.fix(item.el);
    if (next) this.fix(next);
  }

  // fix puts the right day separator before el (or none) and sets
  // whether el continues the previous message's group.
  private fix(el: HTMLLIElement): void {
    let prev = el.previousElementSibling as HTMLLIElement | null;
    let sep: HTMLLIElement | null = null;
    if (prev?.classList.contains("day")) {
      sep = prev;
      prev = prev.previousElementSibling as HTMLLIElement | null;
    }
    const ts = Number(el.dataset.ts);
    const day = dayKey(ts);
    const newDay = !prev || prev.dataset.day !== day;
    if (newDay && !sep) {
      sep = h("li", { class: "day", role: "separator" }, h("span", {}, formatDay(ts)));
      el.before(sep);
    }
    if (newDay && sep) {
      sep.dataset.day = day;
      sep.firstElementChild!.textContent = formatDay(ts);
    }
    if (!newDay && sep) sep.remove();
    const continued = !newDay && !!prev && prev.dataset.user === el.dataset.user && ts - Number(prev.dataset.ts) < GROUP_MS;
    el.classList.toggle("continued", continued);
  }

  /** The ids shown, in order. */
  ids(): string[] {
    return this.items.map((i) => i.id);
  }
}

function messageEl(m: ChatMessage): HTMLLIElement {
  const color = colorClass(m.user);
  const li = h(
    "li",
    { class: m.own ? "msg own" : "msg", "data-user": m.user, "data-cid": m.cid ?? "" },
    m.own ? null : h("span", { class: `avatar ${color}`, "aria-hidden": "true" }, initial(m.user)),
    h(
      "div",
      { class: "bubble" },
      m.own ? h("span", { class: "sr-only" }, "You:") : h("div", { class: `author ${color}` }, m.user),
      (() => {
        const body = h("div", { class: "body", dir: "auto" });
        linkify(body, m.body);
        return body;
      })(),
      h("div", { class: "foot" }, h("time", {}), m.own ? h("span", { class: "status", role: "status" }) : null),
    ),
  );
  setTime(li, m.ts);
  return li;
}

function setTime(li: HTMLLIElement, ts: number): void {
  li.dataset.ts = String(ts);
  li.dataset.day = dayKey(ts);
  const t = li.querySelector("time")!;
  t.dateTime = new Date(ts).toISOString();
  t.title = formatFull(ts);
  t.textContent = formatTime(ts);
}

function setState(li: HTMLLIElement, state: SendState, why?: string, retry?: () => void): void {
  li.dataset.state = state;
  li.classList.toggle("pending", state === "pending");
  li.classList.toggle("failed", state === "failed");
  const st = li.querySelector(".status");
  if (!st) return;
  st.replaceChildren();
  if (state === "pending") {
    st.append(h("span", { class: "icon-clock", "aria-hidden": "true" }), h("span", { class: "status-text" }, "Sending…"));
  } else if (state === "sent") {
    st.append(h("span", { class: "icon-check", "aria-hidden": "true" }), h("span", { class: "sr-only" }, "Sent"));
  } else {
    st.append(h("span", { class: "status-text" }, "Not sent"));
    if (why) st.setAttribute("title", why);
    if (retry) {
      const b = h("button", { type: "button", class: "link-btn" }, "Retry");
      b.addEventListener("click", retry);
      st.append(b);
    }
  }
}
