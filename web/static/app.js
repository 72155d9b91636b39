// natter's minimal web page: join a room, read history, send. Text is only
// ever put into the page with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let ws, user, room, oldest = null, lastId = "";
const shown = new Set();
const pending = new Map(); // cid -> li

function status(text) { $("status").textContent = text; }

function row(m, isPending) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "time";
  t.textContent = new Date(m.ts || Date.now()).toLocaleTimeString();
  const u = document.createElement("span");
  u.className = "user";
  u.textContent = m.user;
  const b = document.createElement("span");
  b.textContent = m.body;
  li.append(t, u, b);
  if (isPending) li.className = "pending";
  if (m.id) li.dataset.id = m.id;
  return li;
}

function addMessage(m, atTop) {
  if (shown.has(m.id)) return;
  shown.add(m.id);
  if (!atTop && m.id > lastId) lastId = m.id;
  const list = $("messages");
  if (atTop) list.prepend(row(m)); else list.append(row(m));
  if (!atTop) list.parentElement.scrollTop = list.parentElement.scrollHeight;
}

function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

function onFrame(f) {
  switch (f.op) {
  case "connected":
    user = f.user;
    status("connected as " + f.user);
    send(lastId ? { op: "join", room, since: lastId } : { op: "join", room });
    break;
  case "joined":
    $("composer").hidden = false;
    if (!lastId) send({ op: "history", room, limit: 50 });
    for (const [cid, li] of pending) send({ op: "send", room, cid, body: li.dataset.body });
    break;
  case "history":
    for (const m of f.messages.slice().reverse()) addMessage(m, true);
    if (f.messages.length) { oldest = f.messages[0].id; if (!lastId) lastId = f.messages[f.messages.length - 1].id; }
    $("older").hidden = !f.more;
    break;
  case "msg":
    if (f.room === room) addMessage(f, false);
    break;
  case "ack": {
    const li = pending.get(f.cid);
    if (li) { li.remove(); pending.delete(f.cid); }
    break;
  }
  case "typing":
    $("typing").textContent = f.user + " is typing…";
    setTimeout(() => { $("typing").textContent = ""; }, 3000);
    break;
  case "error":
    status("error: " + f.code + " — " + f.message);
    break;
  }
}

function connect() {
  status("connecting…");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(proto + "//" + location.host + "/ws");
  // A token in the page's fragment (#token=…, never sent to a server in a
  // URL) signs in on a gateway that requires tokens; otherwise the name
  // typed is used (open mode).
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  ws.onopen = () => send(token ? { op: "connect", token } : { op: "connect", user });
  ws.onmessage = (e) => { for (const line of e.data.split("\n")) if (line) onFrame(JSON.parse(line)); };
  ws.onclose = () => { status("reconnecting…"); setTimeout(connect, 1000 + Math.random() * 1000); };
}

$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  user = $("user").value; room = $("room").value;
  $("signin").hidden = true;
  connect();
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("body").value;
  if (!body) return;
  const cid = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
  const li = row({ user, body }, true);
  li.dataset.body = body;
  $("messages").append(li);
  pending.set(cid, li);
  send({ op: "send", room, cid, body });
  $("body").value = "";
});

let lastTyping = 0;
$("body").addEventListener("input", () => {
  const now = Date.now();
  if (now - lastTyping > 2000) { lastTyping = now; send({ op: "typing", room }); }
});

$("older").addEventListener("click", () => send({ op: "history", room, before: oldest, limit: 50 }));
