// natter's web chat: sign-in, rooms with unread counts, the conversation
// (scroll-back, day separators, own messages from sending to sent), the
// composer, typing and presence, and an honest connection banner. The
// connection itself (reconnect, resume, outbox) is @natter/client's job.
import { NatterClient, NatterError, validName } from "../client/dist/index.js";
import { byId, colorClass, h, initial } from "./dom.js";
import { RoomView } from "./messages.js";
const PAGE = 50;
const TYPING_MS = 4000;
const DEFAULT_ROOM = "lobby";
const el = {
    signin: byId("signin"),
    signinForm: byId("signin-form"),
    signinName: byId("signin-name"),
    signinToken: byId("signin-token"),
    signinError: byId("signin-error"),
    chat: byId("chat"),
    me: byId("me-name"),
    meAvatar: byId("me-avatar"),
    signout: byId("signout"),
    banner: byId("banner"),
    bannerText: byId("banner-text"),
    bannerRetry: byId("banner-retry"),
    roomsPanel: byId("rooms-panel"),
    toggleRooms: byId("toggle-rooms"),
    roomList: byId("room-list"),
    joinForm: byId("join-form"),
    joinName: byId("join-name"),
    roomTitle: byId("room-title"),
    leave: byId("leave-room"),
    membersPanel: byId("members-panel"),
    toggleMembers: byId("toggle-members"),
    memberCount: byId("member-count"),
    memberList: byId("member-list"),
    backdrop: byId("backdrop"),
    scroller: byId("scroller"),
    historyStatus: byId("history-status"),
    jump: byId("jump"),
    typing: byId("typing"),
    composer: byId("composer"),
    input: byId("composer-input"),
    toast: byId("toast"),
};
// ---- saved settings ----
const saved = {
    get user() {
        return localStorage.getItem("natter.user") ?? "";
    },
    set user(v) {
        if (v)
            localStorage.setItem("natter.user", v);
        else
            localStorage.removeItem("natter.user");
    },
    get token() {
        return sessionStorage.getItem("natter.token") ?? "";
    },
    set token(v) {
        if (v)
            sessionStorage.setItem("natter.token", v);
        else
            sessionStorage.removeItem("natter.token");
    },
    get rooms() {
        try {
            const v = JSON.parse(localStorage.getItem("natter.rooms") ?? "[]");
            return Array.isArray(v) ? v.filter((r) => typeof r === "string" && validName(r)) : [];
        }
        catch {
            return [];
        }
    },
    set rooms(v) {
        localStorage.setItem("natter.rooms", JSON.stringify(v));
    },
    get active() {
        return localStorage.getItem("natter.active") ?? "";
    },
    set active(v) {
        localStorage.setItem("natter.active", v);
    },
};
// ---- state ----
let client;
let me = "";
let everConnected = false;
const rooms = new Map();
let active;
// ---- sign-in ----
function showSignin(error) {
    el.chat.hidden = true;
    el.signin.hidden = false;
    el.signinError.hidden = !error;
    el.signinError.textContent = error ?? "";
    el.signinName.value = saved.user;
    el.signinName.focus();
}
el.signinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const user = el.signinName.value.trim();
    const token = el.signinToken.value.trim();
    if (!token && !validName(user)) {
        showSignin("Use 1–64 letters, digits, _ or -, starting with a letter or digit.");
        return;
    }
    saved.user = user;
    saved.token = token;
    start(user, token);
});
el.signout.addEventListener("click", () => {
    client?.close();
    saved.user = "";
    saved.token = "";
    location.reload();
});
function start(user, token) {
    me = user;
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const c = new NatterClient({ url: url.href, user: user || undefined, token: token || undefined });
    client = c;
    c.on("state", renderBanner);
    c.on("connected", (e) => {
        me = e.user;
        renderMe();
    });
    c.on("joined", (e) => {
        const v = rooms.get(e.room);
        if (v && !v.loaded && !v.loading)
            void loadOlder(v);
        if (v === active)
            renderMembers();
    });
    c.on("message", (m) => {
        const v = rooms.get(m.room);
        if (!v)
            return;
        const stick = v === active && isAtBottom();
        const newAuthor = !v.authors.has(m.user);
        const isNew = v.add(m);
        v.typing.delete(m.user);
        if (isNew && !m.own && (v !== active || document.hidden)) {
            v.unread++;
            renderRooms();
        }
        if (v === active) {
            renderTyping();
            if (m.own || stick)
                scrollToBottom();
            else if (isNew)
                el.jump.hidden = false;
            if (newAuthor)
                renderMembers();
            if (v.size === 1)
                renderHistoryStatus();
        }
    });
    c.on("ack", (a) => rooms.get(a.room)?.acked(a.cid, a.id, a.ts));
    c.on("failed", (f) => rooms.get(f.room)?.failed(f.cid, f.message));
    c.on("presence", (p) => {
        if (rooms.get(p.room) === active)
            renderMembers();
    });
    c.on("typing", (t) => {
        const v = rooms.get(t.room);
        if (!v)
            return;
        v.typing.set(t.user, Date.now() + TYPING_MS);
        if (v === active)
            renderTyping();
    });
    c.on("error", (err) => toast(err.message));
    el.signin.hidden = true;
    el.chat.hidden = false;
    renderMe();
    c.connect();
    const names = saved.rooms.length ? saved.rooms : [DEFAULT_ROOM];
    for (const name of names)
        openRoom(name, false);
    select(rooms.get(saved.active) ?? rooms.get(names[0]));
    el.input.focus();
}
function renderMe() {
    el.me.textContent = me || "you";
    el.meAvatar.textContent = initial(me || "?");
    el.meAvatar.className = `avatar ${colorClass(me)}`;
}
// ---- connection banner ----
let bannerTimer;
let lastState;
function renderBanner(s) {
    lastState = s;
    document.body.classList.toggle("disconnected", s.state !== "connected");
    clearInterval(bannerTimer);
    bannerTimer = undefined;
    const show = (state, text, retry = false) => {
        el.banner.hidden = false;
        el.banner.dataset.state = state;
        el.bannerText.textContent = text;
        el.bannerRetry.hidden = !retry;
    };
    switch (s.state) {
        case "connecting":
            show(everConnected ? "reconnecting" : "connecting", everConnected ? "Reconnecting…" : "Connecting…");
            break;
        case "reconnecting": {
            if (!navigator.onLine) {
                show("offline", "You are offline. Messages will be sent when the connection is back.", true);
                break;
            }
            const tick = () => {
                const secs = Math.max(0, Math.ceil(((s.retryAt ?? Date.now()) - Date.now()) / 1000));
                show("reconnecting", secs > 0 ? `Connection lost. Reconnecting in ${secs}s…` : "Connection lost. Reconnecting…", true);
            };
            tick();
            bannerTimer = setInterval(tick, 500);
            break;
        }
        case "connected":
            if (everConnected) {
                show("connected", "Connected");
                bannerTimer = setInterval(() => {
                    clearInterval(bannerTimer);
                    if (lastState === s)
                        el.banner.hidden = true;
                }, 1500);
            }
            else {
                el.banner.hidden = true;
            }
            everConnected = true;
            break;
        case "closed":
            el.banner.hidden = true;
            if (s.error) {
                const why = s.error.code === "invalid_user" ? `That name can't be used: ${s.error.message}` : `Sign-in refused: ${s.error.message}`;
                for (const v of rooms.values())
                    v.list.remove();
                rooms.clear();
                active = undefined;
                el.roomList.replaceChildren();
                showSignin(why);
            }
            break;
        default:
            el.banner.hidden = true;
    }
}
el.bannerRetry.addEventListener("click", () => client?.reconnectNow());
window.addEventListener("online", () => client?.reconnectNow());
window.addEventListener("offline", () => {
    if (lastState && lastState.state !== "connected")
        renderBanner(lastState);
});
// ---- rooms ----
function openRoom(name, focus = true) {
    if (!client)
        return undefined;
    let v = rooms.get(name);
    if (!v) {
        const view = new RoomView(name, (body, failedEl) => {
            view.remove(failedEl);
            sendTo(view, body);
        });
        v = view;
        rooms.set(name, view);
        saved.rooms = [...rooms.keys()];
        client.join(name).catch((err) => {
            if (rooms.get(name) !== view)
                return;
            toast(err instanceof NatterError && err.code === "invalid_room" ? `“${name}” is not a valid room name.` : `Could not join ${name}: ${err.message}`);
            closeRoom(view);
        });
        renderRooms();
    }
    if (focus)
        select(v);
    return v;
}
function closeRoom(v) {
    void client?.leave(v.name);
    rooms.delete(v.name);
    v.list.remove();
    saved.rooms = [...rooms.keys()];
    if (active === v) {
        active = undefined;
        const next = rooms.values().next().value;
        if (next)
            select(next);
        else
            select(openRoom(DEFAULT_ROOM, false));
    }
    renderRooms();
}
function select(v) {
    if (active === v)
        return;
    if (active) {
        active.scrollTop = el.scroller.scrollTop;
        active.atBottom = isAtBottom();
        active.list.remove();
    }
    active = v;
    saved.active = v.name;
    v.unread = 0;
    el.historyStatus.after(v.list);
    el.roomTitle.textContent = v.name;
    el.input.placeholder = `Message #${v.name}`;
    el.jump.hidden = true;
    if (v.atBottom)
        scrollToBottom();
    else
        el.scroller.scrollTop = v.scrollTop;
    renderRooms();
    renderMembers();
    renderTyping();
    renderHistoryStatus();
    closeDrawers();
    if (v.loaded)
        void fillScreen(v);
}
function renderRooms() {
    const items = [...rooms.values()].map((v) => {
        const label = v.unread ? `${v.name}, ${v.unread} unread` : v.name;
        const b = h("button", { type: "button", class: "room", "aria-current": v === active ? "page" : undefined, "aria-label": label, "data-room": v.name }, h("span", { class: "hash", "aria-hidden": "true" }, "#"), h("span", { class: "room-name" }, v.name), v.unread ? h("span", { class: "unread", "aria-hidden": "true" }, v.unread > 99 ? "99+" : String(v.unread)) : null);
        b.addEventListener("click", () => {
            select(v);
            el.input.focus();
        });
        return h("li", {}, b);
    });
    el.roomList.replaceChildren(...items);
    const total = [...rooms.values()].reduce((n, v) => n + v.unread, 0);
    document.title = total ? `(${total}) natter` : "natter";
}
el.joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = el.joinName.value.trim().replace(/^#/, "");
    if (!validName(name)) {
        toast("Room names are 1–64 letters, digits, _ or -, starting with a letter or digit.");
        return;
    }
    el.joinName.value = "";
    openRoom(name);
    el.input.focus();
});
el.leave.addEventListener("click", () => {
    if (active)
        closeRoom(active);
});
// ---- members and typing ----
function renderMembers() {
    if (!active || !client)
        return;
    const online = client.members(active.name);
    const offline = [...active.authors].filter((u) => !online.includes(u)).sort();
    const row = (u, on) => h("li", { class: on ? "member online" : "member offline", "data-user": u }, h("span", { class: `avatar ${colorClass(u)}`, "aria-hidden": "true" }, initial(u)), h("span", { class: "member-name" }, u, u === me ? h("span", { class: "you" }, " (you)") : null), h("span", { class: "presence", role: "img", "aria-label": on ? "online" : "offline" }));
    const children = [h("li", { class: "member-heading" }, `Online — ${online.length}`), ...online.map((u) => row(u, true))];
    if (offline.length)
        children.push(h("li", { class: "member-heading" }, `Offline — ${offline.length}`), ...offline.map((u) => row(u, false)));
    el.memberList.replaceChildren(...children);
    el.memberCount.textContent = String(online.length);
}
let typingTimer;
function renderTyping() {
    clearTimeout(typingTimer);
    if (!active)
        return;
    const now = Date.now();
    let next = Infinity;
    const who = [];
    for (const [u, until] of active.typing) {
        if (until <= now)
            active.typing.delete(u);
        else {
            who.push(u);
            next = Math.min(next, until);
        }
    }
    who.sort();
    el.typing.textContent =
        who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…` : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : "Several people are typing…";
    if (next !== Infinity)
        typingTimer = setTimeout(renderTyping, next - now + 50);
}
// ---- scrolling and history ----
function isAtBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}
function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
    el.jump.hidden = true;
}
async function loadOlder(v) {
    if (!client || v.loading || (v.loaded && !v.more))
        return;
    v.loading = true;
    if (v === active)
        renderHistoryStatus();
    try {
        const page = await client.history(v.name, { before: v.loaded ? v.oldest : undefined, limit: PAGE });
        if (rooms.get(v.name) !== v)
            return;
        const s = el.scroller;
        const fromBottom = s.scrollHeight - s.scrollTop;
        const wasAtBottom = isAtBottom();
        for (const m of page.messages)
            v.add(m);
        v.more = page.more;
        const first = !v.loaded;
        v.loaded = true;
        v.loading = false;
        if (v === active) {
            // Keep what the reader was looking at in place.
            if (first && wasAtBottom)
                scrollToBottom();
            else
                s.scrollTop = s.scrollHeight - fromBottom;
            renderHistoryStatus();
            renderMembers();
            await fillScreen(v);
        }
    }
    catch (err) {
        v.loading = false;
        if (v === active)
            renderHistoryStatus(err instanceof Error ? err.message : String(err));
    }
}
// fillScreen loads older pages while the list does not fill the view (or
// the reader is at its top), so that scrolling up can always load more.
async function fillScreen(v) {
    if (v === active && v.more && !v.loading && el.scroller.scrollTop < 200)
        await loadOlder(v);
}
function renderHistoryStatus(error) {
    const v = active;
    if (!v)
        return;
    const s = el.historyStatus;
    if (error) {
        const b = h("button", { type: "button", class: "link-btn" }, "Try again");
        b.addEventListener("click", () => void loadOlder(v));
        s.replaceChildren(`Could not load older messages (${error}). `, b);
    }
    else if (v.loading) {
        s.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), "Loading messages…");
    }
    else if (v.loaded && !v.more) {
        s.replaceChildren(h("strong", {}, `#${v.name}`), h("br"), v.size ? "This is the beginning of the room." : "No messages yet. Say hello!");
    }
    else if (v.loaded) {
        const b = h("button", { type: "button", class: "link-btn" }, "Load older messages");
        b.addEventListener("click", () => void loadOlder(v));
        s.replaceChildren(b);
    }
    else {
        s.replaceChildren();
    }
    s.dataset.state = error ? "error" : v.loading ? "loading" : v.loaded && !v.more ? "start" : "more";
}
el.scroller.addEventListener("scroll", () => {
    if (!active)
        return;
    if (isAtBottom())
        el.jump.hidden = true;
    if (el.scroller.scrollTop < 200)
        void loadOlder(active);
});
el.jump.addEventListener("click", () => {
    scrollToBottom();
    el.input.focus();
});
document.addEventListener("visibilitychange", () => {
    if (!document.hidden && active?.unread) {
        active.unread = 0;
        renderRooms();
    }
});
// ---- composer ----
function sendTo(v, body) {
    if (!client)
        return;
    try {
        const out = client.send(v.name, body);
        v.addPending(out.cid, body, me);
        if (v === active)
            scrollToBottom();
    }
    catch (err) {
        toast(err instanceof Error ? err.message : String(err));
    }
}
el.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = el.input.value.replace(/\s+$/, "");
    if (!active || body.trim() === "")
        return;
    sendTo(active, body);
    el.input.value = "";
});
el.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        el.composer.requestSubmit();
    }
});
el.input.addEventListener("input", () => {
    if (active && el.input.value !== "")
        client?.typing(active.name);
});
// ---- panels, keyboard, notices ----
function setDrawer(panel, button, open) {
    panel.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
    el.backdrop.hidden = !el.roomsPanel.classList.contains("open") && !el.membersPanel.classList.contains("open");
    if (open)
        panel.querySelector("button, input")?.focus();
}
function closeDrawers() {
    setDrawer(el.roomsPanel, el.toggleRooms, false);
    if (el.membersPanel.classList.contains("open"))
        setDrawer(el.membersPanel, el.toggleMembers, false);
}
el.toggleRooms.addEventListener("click", () => setDrawer(el.roomsPanel, el.toggleRooms, !el.roomsPanel.classList.contains("open")));
el.toggleMembers.addEventListener("click", () => {
    // Wide screens show the member list beside the conversation: the button
    // hides and shows it there; narrow ones slide it in.
    if (matchMedia("(min-width: 1024px)").matches) {
        const hide = !document.body.classList.contains("members-hidden");
        document.body.classList.toggle("members-hidden", hide);
        el.toggleMembers.setAttribute("aria-expanded", String(!hide));
    }
    else {
        setDrawer(el.membersPanel, el.toggleMembers, !el.membersPanel.classList.contains("open"));
    }
});
el.backdrop.addEventListener("click", closeDrawers);
document.addEventListener("keydown", (e) => {
    if (e.key === "Escape")
        closeDrawers();
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown") && active) {
        e.preventDefault();
        const list = [...rooms.values()];
        const i = list.indexOf(active) + (e.key === "ArrowUp" ? -1 : 1);
        select(list[(i + list.length) % list.length]);
        el.input.focus();
    }
});
let toastTimer;
function toast(text) {
    el.toast.textContent = text;
    el.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
        el.toast.hidden = true;
    }, 5000);
}
// ---- start ----
if (saved.user || saved.token)
    start(saved.user, saved.token);
else
    showSignin();
