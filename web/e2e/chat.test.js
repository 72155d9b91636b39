// Browser end-to-end tests of the web chat: Debian's Chromium driven by
// playwright-core, against the production topology as real processes: two
// regions, each a gateway on its own 127.0.0.x, a bridge and a persister,
// federated through the test Redis and sharing the test Kafka and
// PostgreSQL. Two people (two browser contexts) chat, each on a gateway of
// a different region; the gateway of one is killed with SIGKILL and
// started again. Screenshots of the main states are written to
// e2e/artifacts/ (not committed), with each process's log; with
// NATTER_UPDATE_SCREENSHOT=1 the README's docs/screenshot.png is replaced
// too.

import assert from "node:assert/strict";
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";

import { Regions, ensureDir, freshDatabase, repoRoot, waitFor } from "../testutil/natter.js";

const artifacts = join(repoRoot, "web/e2e/artifacts");
const CHROMIUM = process.env.NATTER_CHROMIUM || "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps calling home,
// which on a machine without a network only costs time.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const T = { timeout: 20_000 };

let db;
let browser;
let topology;
// alice (person 0) is on region1's gateway, bob (person 1) on region2's.
const gatewayOf = (i) => topology.gateways[i % topology.gateways.length];

const people = {};

async function person(name, i, contextOptions) {
  const gw = gatewayOf(i);
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const p = { name, gw, context, page, dialogs: [], errors: [] };
  page.on("dialog", (d) => {
    p.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on("pageerror", (e) => p.errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/WebSocket connection|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) {
      p.errors.push(`console: ${m.text()}`);
    }
  });
  return p;
}

async function shot(p, name) {
  await p.page.screenshot({ path: join(artifacts, `${name}.png`) });
}

// The message ids in the active room's list, in DOM order.
function domIds(p) {
  return p.page.$$eval("#scroller .msg[data-id]", (els) => els.map((e) => e.dataset.id).filter(Boolean));
}

function assertUniqueSorted(ids, who) {
  assert.equal(new Set(ids).size, ids.length, `${who}: an id is shown twice`);
  assert.deepEqual([...ids].sort(), ids, `${who}: messages out of id order`);
}

async function serverIds(gw, room) {
  return (await serverMessages(gw, room)).map((m) => m.id);
}

// serverMessages returns the room's stored messages, oldest first.
async function serverMessages(gw, room) {
  const all = [];
  let before = "";
  for (let pages = 0; pages < 20; pages++) {
    const res = await fetch(`${gw.httpUrl}/api/rooms/${room}/messages?limit=200${before ? `&before=${before}` : ""}`);
    assert.equal(res.status, 200);
    const page = await res.json();
    all.unshift(...page.messages);
    if (!page.more) break;
    before = page.messages[0].id;
  }
  return all;
}

async function signIn(p, name) {
  await p.page.goto(`${p.gw.httpUrl}/`);
  await p.page.waitForSelector("#signin-name", { state: "visible" });
  await p.page.fill("#signin-name", name);
  await p.page.press("#signin-name", "Enter");
  await p.page.waitForSelector("#chat", { state: "visible" });
  await connected(p);
}

// connected waits until the banner is gone and the active room is loaded.
async function connected(p) {
  await p.page.waitForSelector("#banner", { state: "hidden", ...T });
  await p.page.waitForSelector('#history-status[data-state="start"], #history-status[data-state="more"]', T);
}

async function say(p, text) {
  await p.page.fill("#composer-input", text);
  await p.page.press("#composer-input", "Enter");
}

// roomsDrawer opens the room list where it is a drawer (phones).
async function roomsDrawer(p) {
  if ((await p.page.isVisible("#toggle-rooms")) && !(await p.page.$("#rooms-panel.open"))) {
    await p.page.click("#toggle-rooms");
    await p.page.waitForSelector("#rooms-panel.open #join-name", { state: "visible" });
  }
}

async function joinRoom(p, room) {
  await roomsDrawer(p);
  await p.page.fill("#join-name", room);
  await p.page.press("#join-name", "Enter");
  await p.page.waitForSelector(`.room[data-room="${room}"][aria-current="page"]`, { state: "attached", ...T });
}

async function openRoom(p, room) {
  await roomsDrawer(p);
  await p.page.click(`.room[data-room="${room}"]`);
  await p.page.waitForSelector(`.room[data-room="${room}"][aria-current="page"]`, { state: "attached", ...T });
}

// message waits for a message with exactly this text in the active room.
function message(p, text) {
  return p.page.waitForFunction((t) => [...document.querySelectorAll("#scroller .msg .body")].some((b) => b.textContent === t), text, T);
}

// scenario is a test that, when it fails, leaves a screenshot of every
// page in the artifacts.
function scenario(name, fn) {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 40);
      for (const p of Object.values(people)) {
        await p.page.screenshot({ path: join(artifacts, `FAILED-${slug}-${p.name}.png`) }).catch(() => {});
      }
      throw err;
    }
  });
}

describe("web chat in a real browser", { timeout: 600_000 }, () => {
  before(async () => {
    rmSync(artifacts, { recursive: true, force: true });
    ensureDir(artifacts);
    db = freshDatabase();
    topology = new Regions({ databaseUrl: db.url, regions: 2, logDir: artifacts });
    await topology.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    people.alice = await person("alice", 0, { viewport: { width: 1280, height: 800 }, locale: "en-US" });
    people.bob = await person("bob", 1, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-GB", colorScheme: "dark", reducedMotion: "reduce" });
  });

  after(async () => {
    await browser?.close();
    await topology?.dispose();
    db?.drop();
  });

  scenario("sign in by name on two browsers", async () => {
    const { alice, bob } = people;
    await alice.page.goto(`${alice.gw.httpUrl}/`);
    await alice.page.waitForSelector("#signin-name", { state: "visible" });
    await shot(alice, "01-signin");
    await signIn(alice, "alice");
    await signIn(bob, "bob");
    assert.equal(await alice.page.textContent("#room-title"), "lobby");
    assert.notEqual(alice.gw.region, bob.gw.region);
    await alice.page.waitForSelector('#member-list .member.online[data-user="bob"]', T);
  });

  scenario("the other browser sees typing, then the message; links are safe", async () => {
    const { alice, bob } = people;
    await alice.page.fill("#composer-input", "Hello Bob");
    await bob.page.waitForFunction(() => document.querySelector("#typing")?.textContent === "alice is typing…", null, T);
    await shot(bob, "02-phone-typing");
    await alice.page.fill("#composer-input", "Hello Bob! The docs: https://example.com/docs?page=1. Not a link: javascript:alert(1)");
    await alice.page.press("#composer-input", "Enter");
    await message(bob, "Hello Bob! The docs: https://example.com/docs?page=1. Not a link: javascript:alert(1)");
    await alice.page.waitForSelector('#scroller .msg.own[data-state="sent"]', T);
    const links = await bob.page.$$eval("#scroller .msg .body a", (as) => as.map((a) => ({ href: a.href, rel: a.rel, target: a.target, text: a.textContent })));
    assert.deepEqual(links, [{ href: "https://example.com/docs?page=1", rel: "noopener noreferrer nofollow", target: "_blank", text: "https://example.com/docs?page=1" }]);
    assert.equal(await bob.page.$$eval("#scroller .msg.own", (e) => e.length), 0, "bob's view marks alice's message as his own");
    assert.ok(await bob.page.$("#scroller .day"), "no day separator");
    await say(bob, "Hi Alice!\nSecond line");
    await message(alice, "Hi Alice!\nSecond line");
    await alice.page.waitForFunction(() => document.querySelector("#typing")?.textContent === "", null, T);
  });

  scenario("markup in a message renders as text", async () => {
    const { alice, bob } = people;
    const evil = "<img src=x onerror=alert(1)> <script>alert(2)</script> <b>bold?</b>";
    await say(bob, evil);
    await message(alice, evil);
    await message(bob, evil);
    for (const p of [alice, bob]) {
      assert.equal(await p.page.$$eval("#scroller img, #scroller script, #scroller b", (e) => e.length), 0);
      assert.ok(await p.page.isVisible(`text=${evil}`));
      assert.deepEqual(p.dialogs, [], `${p.name} saw a dialog`);
    }
    await shot(alice, "03-desktop-chat");
  });

  scenario("unread counts for the rooms not in view", async () => {
    const { alice, bob } = people;
    await joinRoom(alice, "random");
    await openRoom(alice, "lobby");
    await roomsDrawer(bob);
    await shot(bob, "04-phone-rooms");
    await joinRoom(bob, "random");
    await say(bob, "psst, over here");
    await say(bob, "anyone?");
    await alice.page.waitForFunction(() => document.querySelector('.room[data-room="random"] .unread')?.textContent === "2", null, T);
    assert.equal(await alice.page.title(), "(2) natter");
    await shot(alice, "04-desktop-unread");
    await openRoom(alice, "random");
    await message(alice, "anyone?");
    assert.equal(await alice.page.$('.room[data-room="random"] .unread'), null);
    await openRoom(alice, "lobby");
    await openRoom(bob, "lobby");
  });

  scenario("a reload keeps the history", async () => {
    const { bob } = people;
    const before = await domIds(bob);
    assert.ok(before.length >= 3);
    await bob.page.reload();
    await connected(bob);
    await waitFor("bob's history after the reload", async () => (await domIds(bob)).length === before.length);
    assert.deepEqual(await domIds(bob), before);
    assert.deepEqual(await bob.page.$$eval(".room", (rs) => rs.map((r) => r.dataset.room)), ["lobby", "random"]);
  });

  scenario("scrolling up loads older pages until the beginning", async () => {
    const { alice } = people;
    const gw = alice.gw;
    for (let i = 1; i <= 130; i++) {
      const res = await fetch(`${gw.httpUrl}/api/rooms/archive/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: "archivist", body: `note ${i}` }),
      });
      assert.equal(res.status, 201);
    }
    const want = await waitFor("130 stored", async () => {
      const ids = await serverIds(gw, "archive");
      return ids.length === 130 && ids;
    });
    await joinRoom(alice, "archive");
    await message(alice, "note 130");
    const first = (await domIds(alice)).length;
    assert.ok(first < 130, `all ${first} messages came in the first page`);
    for (let i = 0; i < 10 && (await domIds(alice)).length < 130; i++) {
      const n = (await domIds(alice)).length;
      await alice.page.focus("#scroller");
      await alice.page.keyboard.press("Home");
      await waitFor("an older page", async () => (await domIds(alice)).length > n || n === 130);
    }
    const ids = await domIds(alice);
    assert.deepEqual(ids, want);
    await alice.page.waitForSelector('#history-status[data-state="start"]', T);
    await alice.page.evaluate(() => {
      document.querySelector("#scroller").scrollTop = 0;
    });
    await shot(alice, "05-scrolled-to-beginning");
    await openRoom(alice, "lobby");
  });

  scenario("a killed gateway: the page says reconnecting, then catches up with nothing lost or doubled", async () => {
    const { alice, bob } = people;
    const gw = bob.gw; // the gateway bob's browser is on; alice's, in the other region, stays up
    const sentBefore = (await domIds(alice)).length;
    await gw.signal("SIGKILL");
    await bob.page.waitForFunction(() => /Reconnecting/.test(document.querySelector("#banner")?.textContent ?? ""), null, T);
    assert.match(await bob.page.textContent("#banner"), /Connection lost\. Reconnecting( in \d+s)?…/);
    await shot(bob, "06-phone-reconnecting");
    await say(alice, "sent while the gateway was down");
    await say(alice, "and another one");
    await alice.page.waitForFunction(() => document.querySelectorAll('#scroller .msg.own[data-state="sent"]').length > 0 &&
      document.querySelectorAll('#scroller .msg[data-state="pending"]').length === 0, null, T);
    await message(alice, "and another one");
    await say(bob, "written while offline");
    await bob.page.waitForSelector('#scroller .msg[data-state="pending"]', T);
    assert.equal(await bob.page.$$eval('#scroller .msg[data-state="pending"]', (e) => e.length), 1);
    await shot(bob, "07-phone-pending");
    assert.ok(await alice.page.isHidden("#banner"), "alice's gateway went down too");

    await gw.start();
    await bob.page.waitForSelector("#banner", { state: "hidden", timeout: 60_000 });
    await message(bob, "and another one");
    await message(alice, "written while offline");
    await bob.page.waitForFunction(() => document.querySelectorAll('#scroller .msg[data-state="pending"]').length === 0, null, T);
    const stored = await waitFor("the store has every message", async () => {
      const msgs = await serverMessages(alice.gw, "lobby");
      return msgs.length === sentBefore + 3 && msgs;
    });
    const want = stored.map((m) => m.id);
    assert.deepEqual(await serverIds(bob.gw, "lobby"), want, "the two regions' gateways read different histories");
    const regionOf = (body) => stored.find((m) => m.body === body)?.region;
    assert.equal(regionOf("and another one"), alice.gw.region);
    assert.equal(regionOf("written while offline"), bob.gw.region);
    for (const p of [alice, bob]) {
      const ids = await domIds(p);
      assertUniqueSorted(ids, p.name);
      assert.deepEqual(ids, want, `${p.name}'s page differs from the store`);
    }
    await shot(alice, "08-desktop-after-restart");
    await shot(bob, "09-phone-after-restart");
  });

  scenario("keyboard only: Tab reaches the composer, Alt+Arrow switches rooms", async () => {
    const { alice } = people;
    await alice.page.keyboard.press("Alt+ArrowDown");
    await alice.page.waitForSelector('.room[data-room="random"][aria-current="page"]', T);
    assert.equal(await alice.page.evaluate(() => document.activeElement?.id), "composer-input");
    await alice.page.keyboard.type("typed with the keyboard");
    await alice.page.keyboard.press("Shift+Enter");
    await alice.page.keyboard.type("second line");
    await alice.page.keyboard.press("Enter");
    await message(alice, "typed with the keyboard\nsecond line");
  });

  scenario("a conversation as the README shows it", async () => {
    const { alice, bob } = people;
    await joinRoom(alice, "design");
    await joinRoom(bob, "design");
    const lines = [
      [alice, "Morning! I pushed the new room list, have a look when you can."],
      [bob, "Looks great on my phone. Unread badges work too."],
      [alice, "Nice. Spec for the reconnect banner: https://example.com/specs/banner"],
      [bob, "Read it. One thing:\nshould the countdown show seconds or a spinner?"],
      [alice, "Seconds: people like to know how long."],
    ];
    for (const [p, text] of lines) {
      await say(p, text);
      await message(alice, text);
      await message(bob, text);
    }
    await openRoom(bob, "lobby");
    await say(bob, "(lunch at noon?)");
    await openRoom(bob, "design");
    await alice.page.waitForFunction(() => document.querySelector('.room[data-room="lobby"] .unread')?.textContent === "1", null, T);
    await bob.page.fill("#composer-input", "Agreed");
    await alice.page.waitForFunction(() => document.querySelector("#typing")?.textContent === "bob is typing…", null, T);
    await alice.page.mouse.move(640, 10); // no hover highlight in the picture
    await shot(alice, "10-desktop-readme");
    await shot(bob, "11-phone-readme");
    if (process.env.NATTER_UPDATE_SCREENSHOT === "1") copyFileSync(join(artifacts, "10-desktop-readme.png"), join(repoRoot, "docs/screenshot.png"));
  });

  scenario("a refused token sends the person back to sign-in with the reason", async () => {
    const carol = await person("carol", 0, { viewport: { width: 1280, height: 800 } });
    people.carol = carol;
    await carol.page.goto(`${carol.gw.httpUrl}/`);
    await carol.page.click(".token-box summary");
    await carol.page.fill("#signin-token", "not-a-valid-token");
    await carol.page.click("#signin-form button[type=submit]");
    await carol.page.waitForSelector("#signin-error", { state: "visible", ...T });
    assert.match(await carol.page.textContent("#signin-error"), /^Sign-in refused: /);
    assert.ok(await carol.page.isHidden("#chat"));
    await shot(carol, "12-signin-refused");
    await carol.context.close();
    delete people.carol;
    assert.deepEqual(carol.errors, []);
  });

  scenario("no script errors and no CSP violations", () => {
    for (const p of Object.values(people)) assert.deepEqual(p.errors, [], `${p.name}'s page`);
  });
});
