// Tests of @natter/client against a real natter process (built from this
// repository, on the test PostgreSQL, with its embedded Kafka-protocol
// broker). Node 20 has no global WebSocket: the `ws` package is passed in.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { retryBackoff } from "../dist/backoff.js";
import { NatterClient, backoffDelay, defaultBackoff, parseFrames } from "../dist/index.js";
import { Natter, freshDatabase, waitFor } from "../../testutil/natter.js";

const fast = { pingInterval: 300, heartbeatTimeout: 1500, backoff: { initial: 100, max: 1000 }, retryDelay: 200 };

// A client that records everything it emits.
function client(natter, user, extra = {}) {
  const c = new NatterClient({ url: natter.wsUrl, user, WebSocket, ...fast, ...extra });
  c.seen = { message: [], ack: [], failed: [], state: [], presence: [], typing: [], error: [] };
  for (const kind of Object.keys(c.seen)) c.on(kind, (e) => c.seen[kind].push(e));
  c.connect();
  return c;
}

// An in-process stand-in for a gateway, passed as the client's WebSocket:
// it signs everyone in, refuses joins and sends with `unavailable` while
// told to, and notes when each join and send came. drop() loses the
// newest connection the way a crashed gateway does.
class FakeGateway {
  refuseJoins = true;
  refuseSends = false;
  joins = [];
  sends = [];
  sockets = [];

  constructor() {
    const gw = this;
    this.WebSocket = class {
      readyState = 0;
      onopen = null;
      onmessage = null;
      onclose = null;
      onerror = null;
      constructor() {
        gw.sockets.push(this);
        setImmediate(() => {
          if (this.readyState !== 0) return;
          this.readyState = 1;
          this.onopen?.({});
        });
      }
      send(data) {
        const reply = gw.answer(JSON.parse(data));
        if (!reply) return;
        setImmediate(() => {
          if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(reply) });
        });
      }
      close() {
        this.readyState = 3;
      }
    };
  }

  answer(f) {
    const refused = { op: "error", code: "unavailable", message: "history is unavailable; retry the join", ref: f.ref };
    switch (f.op) {
      case "connect":
        this.user = f.user;
        return { op: "connected", user: f.user, session: "s1", version: 2 };
      case "ping":
        return { op: "pong" };
      case "history":
        return { op: "history", room: f.room, messages: [], more: false };
      case "join":
        this.joins.push(Date.now());
        return this.refuseJoins ? refused : { op: "joined", room: f.room, members: [this.user] };
      case "send":
        this.sends.push(Date.now());
        return this.refuseSends ? { ...refused, message: "not yet durable; retry" } : { op: "ack", cid: f.cid, id: "01M8JGN9YK9T4JHN4RZGFCRC7E", ts: Date.now() };
    }
    return undefined;
  }

  drop() {
    const ws = this.sockets.at(-1);
    ws.readyState = 3;
    ws.onclose?.({ code: 1006, reason: "" });
  }
}

// The waits between consecutive times.
function gaps(times) {
  return times.slice(1).map((t, i) => t - times[i]);
}

// Asserts that every wait in got lasted at least as long as the one in
// want: timers fire late under load, never early (1 ms of rounding aside),
// so only the lower bound is safe to check.
function assertAtLeast(got, want, what) {
  assert.ok(got.length >= want.length, `${what}: ${got.length} waits, want ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(got[i] >= want[i] - 2, `${what}: wait ${i} lasted ${got[i]} ms, want at least ${want[i]} (all: ${got})`);
  }
}

// Runs psql on url; the test database is the test services' PostgreSQL.
function psql(url, sql) {
  const bins = ["psql", join(process.env.NATTER_PG_BIN || "/usr/lib/postgresql/15/bin", "psql")];
  for (const bin of bins) {
    try {
      execFileSync(bin, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], { stdio: ["ignore", "ignore", "pipe"] });
      return;
    } catch (err) {
      if (err.code !== "ENOENT") throw new Error(`psql ${sql}: ${err.stderr?.toString() || err.message}`);
    }
  }
  throw new Error(`psql ${sql}: no psql found`);
}

function ids(msgs) {
  return msgs.map((m) => m.id);
}

function assertNoDuplicates(msgs, who) {
  const all = ids(msgs);
  assert.equal(new Set(all).size, all.length, `${who} got a message twice: ${all}`);
}

async function serverIds(natter, room) {
  const res = await fetch(`${natter.httpUrl}/api/rooms/${room}/messages?limit=200`);
  assert.equal(res.status, 200);
  const body = await res.json();
  return body.messages.map((m) => m.id);
}

describe("pure helpers", () => {
  test("backoff grows to its cap and jitters within half of it", () => {
    const o = defaultBackoff;
    assert.equal(backoffDelay(o, 0, () => 0), o.initial / 2);
    assert.equal(backoffDelay(o, 0, () => 0.999999), o.initial);
    assert.equal(backoffDelay(o, 3, () => 0.5), Math.round(o.initial * 8 * 0.75));
    assert.equal(backoffDelay(o, 50, () => 1), o.max);
  });

  test("retries after a refusal start at retryDelay and grow like the backoff to its cap", () => {
    const o = retryBackoff(defaultBackoff, 200);
    const top = (n) => backoffDelay(o, n, () => 1);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(top), [200, 400, 800, 1600, 3200, 6400, defaultBackoff.max]);
    assert.equal(backoffDelay(o, 0, () => 0), 100, "jittered within half, like reconnects");
    assert.equal(backoffDelay(o, 50, () => 1), defaultBackoff.max);
    assert.equal(backoffDelay(retryBackoff(defaultBackoff, 20_000), 0, () => 1), 20_000, "never shorter than retryDelay");
  });

  test("a server frame with several objects splits on newlines", () => {
    const fs = parseFrames('{"op":"pong"}\n{"op":"typing","room":"r","user":"u"}');
    assert.deepEqual(fs.map((f) => f.op), ["pong", "typing"]);
  });
});

describe("a gateway that refuses for now (in process)", () => {
  const clients = [];
  const fakeClient = (gw, extra) => {
    const c = new NatterClient({ url: "ws://fake/ws", user: "ann", WebSocket: gw.WebSocket, pingInterval: 300, heartbeatTimeout: 10_000, random: () => 1, ...extra });
    c.seen = { error: [], joined: [] };
    c.on("error", (e) => c.seen.error.push(e));
    c.on("joined", (e) => c.seen.joined.push(e));
    clients.push(c);
    c.connect();
    return c;
  };

  after(() => {
    for (const c of clients) c.close();
  });

  test("a refused join is asked again after longer and longer waits", async () => {
    const gw = new FakeGateway();
    const c = fakeClient(gw, { retryDelay: 40, backoff: { initial: 50, max: 640 } });
    const joined = c.join("lobby");
    joined.catch(() => {});
    await waitFor("7 join attempts", () => gw.joins.length >= 7, { timeout: 20_000 });
    // At a fixed retryDelay these would be 40 ms each: 6 waits in 240 ms.
    assertAtLeast(gaps(gw.joins), [40, 80, 160, 320, 640, 640], "join retries");
    assert.deepEqual(c.seen.error, [], "a refusal for now is not an error");
    gw.refuseJoins = false;
    const ev = await joined;
    assert.deepEqual(ev.members, ["ann"]);
  });

  test("after a reconnect the join goes at once, and after joined the waits start over", async () => {
    const gw = new FakeGateway();
    // Factor 20: the third refusal puts the next attempt 16 s away.
    const c = fakeClient(gw, { retryDelay: 40, backoff: { initial: 50, max: 60_000, factor: 20 } });
    const joined = c.join("lobby");
    joined.catch(() => {});
    await waitFor("3 join attempts", () => gw.joins.length >= 3, { timeout: 20_000 });
    assertAtLeast(gaps(gw.joins), [40, 800], "join retries");

    // The gateway crashes while the client waits; the new connection
    // joins as soon as it is up, not when the old wait is over.
    gw.refuseJoins = false;
    gw.drop();
    await waitFor("joined on the new connection", () => c.seen.joined.length === 1, { timeout: 5000 });
    await joined;
    assert.equal(gw.joins.length, 4);

    // Joined: the next refusals are spaced from retryDelay again, not
    // from where the last run of refusals stopped (40 · 20³ ms, capped
    // at 60 s).
    gw.refuseJoins = true;
    gw.drop();
    await waitFor("2 more join attempts", () => gw.joins.length >= 6, { timeout: 5000 });
    assert.equal(c.seen.joined.length, 1);
  });

  test("a refused send is resent after longer and longer waits, with its cid", async () => {
    const gw = new FakeGateway();
    gw.refuseJoins = false;
    const c = fakeClient(gw, { retryDelay: 40, backoff: { initial: 50, max: 640 } });
    await c.join("lobby");
    gw.refuseSends = true;
    const acked = new Promise((resolve) => c.on("ack", resolve));
    const out = c.send("lobby", "hello");
    await waitFor("5 send attempts", () => gw.sends.length >= 5, { timeout: 20_000 });
    assertAtLeast(gaps(gw.sends), [40, 80, 160, 320], "send retries");
    gw.refuseSends = false;
    assert.equal((await acked).cid, out.cid);
  });
});

describe("one gateway", () => {
  let db, natter;
  const clients = [];
  const open = (user, extra) => {
    const c = client(natter, user, extra);
    clients.push(c);
    return c;
  };

  before(async () => {
    db = freshDatabase();
    natter = new Natter({ databaseUrl: db.url });
    await natter.start();
  });

  after(async () => {
    for (const c of clients) c.close();
    await natter?.dispose();
    db?.drop();
  });

  test("two clients chat: messages, own marks, acks, presence and typing", async () => {
    const alice = open("alice");
    await alice.join("chat");
    const bob = open("bob");
    const joined = await bob.join("chat");
    assert.deepEqual(joined.members, ["alice", "bob"]);
    await waitFor("alice sees bob join", () => alice.seen.presence.some((p) => p.joined.includes("bob")));
    assert.deepEqual(alice.members("chat"), ["alice", "bob"]);

    const out = alice.send("chat", "hi bob <b>");
    assert.equal(out.state, "pending");
    assert.match(out.cid, /^[0-9a-f]{32}$/);
    const got = await waitFor("bob gets it", () => bob.seen.message[0]);
    assert.equal(got.body, "hi bob <b>");
    assert.equal(got.user, "alice");
    assert.equal(got.own, false);
    assert.equal(got.cid, out.cid);
    const ack = await waitFor("alice's ack", () => alice.seen.ack[0]);
    assert.equal(ack.cid, out.cid);
    assert.equal(ack.id, got.id);
    assert.equal(alice.seen.message.length, 1);
    assert.equal(alice.seen.message[0].own, true);
    assert.deepEqual(alice.outbox(), []);

    bob.typing("chat");
    bob.typing("chat"); // throttled
    await waitFor("alice sees bob typing", () => alice.seen.typing.length > 0);
    assert.deepEqual(alice.seen.typing[0], { room: "chat", user: "bob" });

    await bob.leave("chat");
    await waitFor("alice sees bob leave", () => alice.seen.presence.some((p) => p.left.includes("bob")));
    assert.deepEqual(alice.members("chat"), ["alice"]);
    assert.equal(bob.seen.typing.length, 0, "nobody else typed");
  });

  test("history pages walk back through the room without gaps", async () => {
    const c = open("pager");
    await c.join("paged");
    for (let i = 0; i < 25; i++) c.send("paged", `m${i}`);
    await waitFor("25 acks", () => c.seen.ack.length === 25);
    const want = c.seen.ack.map((a) => a.id).sort();
    // The store lags the log a little: wait until the newest is there.
    await waitFor("history reaches the newest", async () => {
      const p = await c.history("paged", { limit: 1 });
      return p.messages[0]?.id === want[24];
    });
    let got = [];
    let before;
    for (let pages = 0; pages < 10; pages++) {
      const p = await c.history("paged", { before, limit: 10 });
      got = [...p.messages.map((m) => m.id), ...got];
      if (!p.more) break;
      before = p.messages[0].id;
    }
    assert.deepEqual(got, want);
    const page = await c.history("paged", { limit: 2 });
    assert.equal(page.messages[1].own, true);
    assert.equal(page.messages[1].body, "m24");
  });

  test("bad input is refused with typed errors", async () => {
    const c = open("careful");
    await assert.rejects(c.join("a.b"), { name: "NatterError", code: "invalid_room" });
    assert.throws(() => c.send("nowhere", "x"), { code: "not_joined" });
    await c.join("strict");
    assert.throws(() => c.send("strict", ""), { code: "invalid_body" });
    assert.throws(() => c.send("strict", "é".repeat(2049)), { code: "invalid_body" });
    const out = c.send("strict", "nul \u0000 inside");
    const failed = await waitFor("failed event", () => c.seen.failed[0]);
    assert.equal(failed.cid, out.cid);
    assert.equal(failed.code, "invalid_body");
    assert.deepEqual(c.outbox(), []);
    await assert.rejects(c.history("strict", { limit: 500 }), { code: "invalid_limit" });
  });

  test("a refused sign-in closes the client instead of retrying", async () => {
    const c = open("bad name!");
    const st = await waitFor("closed", () => c.seen.state.find((s) => s.state === "closed"));
    assert.equal(st.error.code, "invalid_user");
    assert.equal(c.state, "closed");
  });
});

describe("a gateway that fails", () => {
  let db, natter;
  const clients = [];
  const open = (user, extra) => {
    const c = client(natter, user, extra);
    clients.push(c);
    return c;
  };

  before(async () => {
    db = freshDatabase();
    natter = new Natter({ databaseUrl: db.url });
    await natter.start();
  });

  after(async () => {
    for (const c of clients) c.close();
    await natter?.dispose();
    db?.drop();
  });

  test("after a kill -9 and restart: outbox resent with its cids, nothing lost or doubled", async () => {
    const alice = open("alice");
    // Bob waits for a nudge before reconnecting, so he misses messages
    // and must catch up with join{since}.
    const bob = open("bob", { backoff: { initial: 600_000, max: 600_000 } });
    await alice.join("crash");
    await bob.join("crash");
    for (let i = 0; i < 5; i++) alice.send("crash", `before ${i}`);
    await waitFor("5 acks", () => alice.seen.ack.length === 5);
    await waitFor("bob has 5", () => bob.seen.message.length === 5);

    await natter.signal("SIGKILL");
    await waitFor("both reconnecting", () => alice.state === "reconnecting" && bob.state === "reconnecting");
    const queued = [0, 1, 2].map((i) => alice.send("crash", `while down ${i}`));
    assert.equal(alice.outbox("crash").length, 3);

    await natter.start();
    await waitFor("alice's outbox acked", () => alice.seen.ack.length === 8, { timeout: 30_000 });
    assert.deepEqual(alice.seen.ack.slice(5).map((a) => a.cid), queued.map((q) => q.cid));
    assert.equal(bob.state, "reconnecting");
    bob.reconnectNow();
    await waitFor("bob caught up", () => bob.seen.message.length >= 8, { timeout: 30_000 });

    const want = alice.seen.ack.map((a) => a.id).sort();
    assertNoDuplicates(bob.seen.message, "bob");
    assertNoDuplicates(alice.seen.message, "alice");
    assert.deepEqual(ids(bob.seen.message).sort(), want);
    assert.deepEqual(ids(alice.seen.message).sort(), want);
    assert.deepEqual(bob.seen.message.slice(5).map((m) => m.body), ["while down 0", "while down 1", "while down 2"]);
    await waitFor("the store has all 8", async () => (await serverIds(natter, "crash")).length === 8);
    assert.deepEqual(await serverIds(natter, "crash"), want);
  });

  test("a silent gateway is detected by the heartbeat and replaced", async () => {
    const c = open("watcher");
    await c.join("quiet");
    // Let the client learn that the room is empty before the pause, so its
    // rejoin always asks for the whole room (since ZERO_ID). Left to the
    // client's own lookup after join, whether the answer beat SIGSTOP was
    // a race, and the test took one of two rejoin paths by chance.
    assert.deepEqual((await c.history("quiet", { limit: 1 })).messages, []);
    await natter.signal("SIGSTOP");
    try {
      const st = await waitFor("timeout detected", () => c.seen.state.find((s) => s.state === "reconnecting" && s.error?.code === "timeout"), { timeout: 10_000 });
      assert.ok(st.retryAt >= Date.now() - 5000);
    } finally {
      await natter.signal("SIGCONT");
    }
    await waitFor("connected again", () => c.state === "connected", { timeout: 20_000 });
    c.send("quiet", "still here");
    await waitFor("round trip", () => c.seen.message.some((m) => m.body === "still here"), { timeout: 20_000 });
  });

  test("a room that was empty is replayed whole on rejoin (since ZERO_ID)", async () => {
    // Erin learns that the room is empty, then misses a message while
    // away; her rejoin asks for everything after ZERO_ID and must get it.
    // (For since ZERO_ID the gateway's resume sought the Kafka log at
    // timestamp -2000 ms, which Kafka and the embedded broker refuse with
    // UNSUPPORTED_VERSION: the rejoin failed as "unavailable" for ever.)
    const erin = open("erin", { backoff: { initial: 600_000, max: 600_000 } });
    await erin.join("fresh");
    assert.deepEqual((await erin.history("fresh", { limit: 1 })).messages, []);
    await natter.signal("SIGKILL");
    await waitFor("erin reconnecting", () => erin.state === "reconnecting");
    await natter.start();
    const frank = open("frank");
    await frank.join("fresh");
    frank.send("fresh", "while erin was away");
    await waitFor("frank's ack", () => frank.seen.ack.length === 1, { timeout: 20_000 });
    assert.equal(erin.state, "reconnecting");
    erin.reconnectNow();
    const missed = await waitFor("erin caught up", () => erin.seen.message.find((m) => m.body === "while erin was away"), { timeout: 20_000 });
    assert.equal(missed.id, frank.seen.ack[0].id);
    assert.deepEqual(erin.seen.error, []);
    erin.send("fresh", "back");
    await waitFor("erin's round trip", () => frank.seen.message.some((m) => m.body === "back") && erin.seen.ack.length === 1, { timeout: 20_000 });
  });
});

describe("a gateway whose store is down", () => {
  let db, natter;
  const clients = [];

  before(async () => {
    db = freshDatabase();
    natter = new Natter({ databaseUrl: db.url });
    await natter.start();
  });

  after(async () => {
    for (const c of clients) c.close();
    await natter?.dispose();
    db?.drop();
  });

  test("rejoins refused as unavailable are spaced out, not a resume every retryDelay", async () => {
    // Every socket the client opens, and when it sent each join.
    const sockets = [];
    const joins = [];
    class Counting extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }
      send(data, ...rest) {
        if (JSON.parse(data).op === "join") joins.push(Date.now());
        return super.send(data, ...rest);
      }
    }
    const c = client(natter, "gus", { WebSocket: Counting, retryDelay: 100, backoff: { initial: 100, max: 3200 }, random: () => 1 });
    clients.push(c);
    c.seen.joined = [];
    c.on("joined", (e) => c.seen.joined.push(e));
    await c.join("stores");
    c.send("stores", "before the outage");
    await waitFor("the client has an id to resume from", () => c.lastId("stores"));

    // With the messages table gone, a resume (join with since) fails and
    // the gateway answers unavailable.
    psql(db.url, "ALTER TABLE messages RENAME TO messages_away");
    let restored = false;
    const restore = () => {
      if (!restored) psql(db.url, "ALTER TABLE messages_away RENAME TO messages");
      restored = true;
    };
    try {
      const first = joins.length;
      sockets.at(-1).terminate();
      await waitFor("5 refused rejoins", () => joins.length >= first + 5, { timeout: 30_000 });
      const refused = joins.slice(first);
      // At a fixed retryDelay: 4 waits of 100 ms.
      assertAtLeast(gaps(refused), [100, 200, 400, 800], "rejoins");
      assert.equal(c.seen.joined.length, 1, "not joined while the store is down");
      assert.deepEqual(c.seen.error, [], "a refusal for now is not an error");
      restore();
      await waitFor("joined again", () => c.seen.joined.length === 2, { timeout: 20_000 });
    } finally {
      restore();
    }
  });
});
