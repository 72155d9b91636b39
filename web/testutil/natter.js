// Helpers of the JavaScript tests: build the natter binary once, give each
// test a fresh PostgreSQL database on the test services, run natter as
// real processes — one with every role, or gateways, bridges and
// persisters in several regions — (and kill, pause or restart one), and
// wait for conditions instead of sleeping.

import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const running = new Set();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/**
 * Returns the natter binary: $NATTER_BIN if set (scripts/test builds it
 * once), else a fresh `go build` into a temporary directory.
 */
export function natterBinary() {
  if (process.env.NATTER_BIN) return process.env.NATTER_BIN;
  const dir = mkdtempSync(join(tmpdir(), "natter-js-bin-"));
  const bin = join(dir, "natter");
  execFileSync("go", ["build", "-o", bin, "./cmd/natter"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  process.env.NATTER_BIN = bin;
  return bin;
}

function service(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the tests with ./scripts/test, which starts PostgreSQL, Redis and Kafka`);
  }
  return v;
}

function psql(url, sql) {
  const bins = ["psql", join(process.env.NATTER_PG_BIN || "/usr/lib/postgresql/15/bin", "psql")];
  let last;
  for (const bin of bins) {
    try {
      execFileSync(bin, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], { stdio: ["ignore", "ignore", "pipe"] });
      return;
    } catch (err) {
      last = err;
      if (err.code !== "ENOENT") break;
    }
  }
  throw new Error(`psql ${sql}: ${last.stderr?.toString() || last.message}`);
}

/** Creates an empty database on the test PostgreSQL; drop() removes it. */
export function freshDatabase() {
  const base = service("NATTER_TEST_DATABASE_URL");
  const name = `web_${Date.now()}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  psql(base, `CREATE DATABASE ${name}`);
  return {
    url: base.replace("/natter?", `/${name}?`),
    drop: () => psql(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Returns a free TCP port on host. */
export function freePort(host = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Calls f until it returns a truthy value (which it returns) or timeout ms
 * pass; then throws with what.
 */
export async function waitFor(what, f, { timeout = 20_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * A natter process (`natter args...`) that can be killed, paused and
 * started again with the same arguments: the same ports, data and
 * database.
 */
export class Process {
  /**
   * @param {object} o
   * @param {string} o.name       names the process in errors
   * @param {string[]} [o.args]   natter's arguments (may also be set before the first start)
   * @param {string} [o.readyUrl] answers 200 once the process is ready
   * @param {string} [o.logFile]  the process's output is appended here too
   */
  constructor(o) {
    this.name = o.name;
    this.args = o.args ?? [];
    this.readyUrl = o.readyUrl;
    this.logFile = o.logFile;
    this.proc = undefined;
    this.logs = [];
  }

  /** Starts the process and waits until readyUrl answers 200. */
  async start() {
    const p = spawn(natterBinary(), this.args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NATTER_LOG_LEVEL: "info" } });
    this.proc = p;
    running.add(p);
    p.exited = new Promise((resolve) => p.once("exit", (code, signal) => {
      running.delete(p);
      resolve({ code, signal });
    }));
    const log = (chunk) => {
      const text = chunk.toString();
      this.logs.push(text);
      if (this.logs.length > 400) this.logs.splice(0, this.logs.length - 400);
      if (this.logFile) appendFileSync(this.logFile, text);
    };
    p.stdout.on("data", log);
    p.stderr.on("data", log);
    let exited = false;
    p.exited.then(() => { exited = true; });
    await waitFor(`${this.name} ${this.readyUrl}`, async () => {
      if (exited) throw new Error(`${this.name} exited during start:\n${this.tail()}`);
      const res = await fetch(this.readyUrl);
      return res.status === 200;
    }, { timeout: 120_000, interval: 100 });
  }

  /** Sends signal; for SIGKILL and SIGTERM, waits for the exit. */
  async signal(sig) {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(sig);
    if (sig === "SIGKILL" || sig === "SIGTERM") await p.exited;
  }

  /** Stops the process with SIGTERM (SIGKILL after 30 s). */
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGCONT");
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 30_000);
    await p.exited;
    clearTimeout(t);
  }

  tail(n = 60) {
    return this.logs.join("").split("\n").slice(-n).join("\n");
  }
}

/**
 * One natter process with every role (the embedded Kafka-protocol broker
 * keeps its log in dataDir) on 127.0.0.1.
 */
export class Natter extends Process {
  /**
   * @param {object} o
   * @param {string} o.databaseUrl
   * @param {string} [o.dataDir]  default: a new temporary directory
   * @param {string} [o.logFile]  natter's output is appended here too
   * @param {string[]} [o.args]   extra flags
   */
  constructor(o) {
    super({ name: "natter", logFile: o.logFile });
    this.databaseUrl = o.databaseUrl;
    this.dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), "natter-js-data-"));
    this.ownDataDir = !o.dataDir;
    this.extraArgs = o.args ?? [];
    this.port = 0;
    const uniq = `${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    this.topic = `web.${uniq}`;
    this.group = `web-${uniq}`;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Starts natter (on a free port the first time) and waits until ready. */
  async start() {
    if (!this.port) {
      this.port = await freePort();
      this.readyUrl = `${this.httpUrl}/readyz`;
      this.args = [
        "--addr", `127.0.0.1:${this.port}`,
        "--database-url", this.databaseUrl,
        "--data-dir", this.dataDir,
        "--kafka-topic", this.topic,
        "--kafka-group", this.group,
        ...this.extraArgs,
      ];
    }
    await super.start();
  }

  /** Stops natter and removes its temporary data directory. */
  async dispose() {
    await this.stop();
    if (this.ownDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A `natter gateway` of a Regions topology. */
export class Gateway extends Process {
  constructor(o) {
    super(o);
    this.id = o.id;
    this.region = o.region;
    this.host = o.host;
    this.port = o.port;
    this.natsUrl = o.natsUrl;
  }

  get httpUrl() {
    return `http://${this.host}:${this.port}`;
  }

  get wsUrl() {
    return `ws://${this.host}:${this.port}/ws`;
  }
}

/**
 * The production topology as separate processes, the way `natter local`
 * starts it: in each region, gateways on their own 127.0.0.x whose
 * embedded NATS servers form the region's cluster, one bridge (NATS →
 * Kafka, and Redis federation with the other regions) and one persister
 * (Kafka → PostgreSQL). All regions share the test Kafka (a fresh topic
 * and consumer group per topology), the test Redis and one database.
 */
export class Regions {
  /**
   * @param {object} o
   * @param {string} o.databaseUrl
   * @param {number} [o.regions]   default 2
   * @param {number} [o.gateways]  per region, default 1
   * @param {string} [o.logDir]    each process's output goes to NAME.log here
   */
  constructor(o) {
    this.databaseUrl = o.databaseUrl;
    this.regionCount = o.regions ?? 2;
    this.gatewayCount = o.gateways ?? 1;
    this.logDir = o.logDir;
    /** @type {{name: string, gateways: Gateway[], bridge: Process, persister: Process}[]} */
    this.regions = [];
  }

  /** Every gateway, region by region. */
  get gateways() {
    return this.regions.flatMap((r) => r.gateways);
  }

  /** Picks the addresses, starts every process and waits until all are ready. */
  async start() {
    const uniq = `${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    const kafka = [
      "--kafka-brokers", service("NATTER_TEST_KAFKA_BROKERS"),
      "--kafka-topic", `web.${uniq}`,
    ];
    const group = ["--kafka-group", `web-${uniq}`];
    const redisUrl = service("NATTER_TEST_REDIS_URL");
    const logFile = (name) => this.logDir && join(this.logDir, `${name}.log`);
    // Ports are picked now and kept for restarts; none twice.
    const taken = new Set();
    const addr = async (host) => {
      for (;;) {
        const a = `${host}:${await freePort(host)}`;
        if (!taken.has(a)) {
          taken.add(a);
          return a;
        }
      }
    };
    let ip = 2;
    for (let r = 1; r <= this.regionCount; r++) {
      const name = `region${r}`;
      const hosts = [];
      for (let g = 0; g < this.gatewayCount; g++) hosts.push(`127.0.0.${ip++}`);
      const cluster = [];
      for (const h of hosts) cluster.push(await addr(h));
      const gateways = [];
      for (const [g, host] of hosts.entries()) {
        const id = `${name}-gw${g + 1}`;
        const httpAddr = await addr(host);
        const natsAddr = await addr(host);
        gateways.push(new Gateway({
          name: id, id, region: name, host, port: Number(httpAddr.split(":")[1]), natsUrl: `nats://${natsAddr}`, logFile: logFile(id),
          readyUrl: `http://${httpAddr}/readyz`,
          args: [
            "gateway", "--open", "--id", id, "--region", name,
            "--addr", httpAddr,
            "--nats-addr", natsAddr,
            "--nats-cluster-addr", cluster[g],
            "--nats-routes", cluster.map((a) => `nats://${a}`).join(","),
            "--database-url", this.databaseUrl,
            ...kafka, ...group,
          ],
        }));
      }
      const bridgeAddr = await addr(hosts[0]);
      const bridge = new Process({
        name: `${name}-bridge`, logFile: logFile(`${name}-bridge`),
        readyUrl: `http://${bridgeAddr}/healthz`,
        args: [
          "bridge", "--region", name,
          "--nats-url", gateways.map((g) => g.natsUrl).join(","),
          "--redis-url", redisUrl,
          "--addr", bridgeAddr,
          ...kafka,
        ],
      });
      const persisterAddr = await addr(hosts[0]);
      const persister = new Process({
        name: `${name}-persister`, logFile: logFile(`${name}-persister`),
        readyUrl: `http://${persisterAddr}/healthz`,
        args: ["persister", "--database-url", this.databaseUrl, "--addr", persisterAddr, ...kafka, ...group],
      });
      this.regions.push({ name, gateways, bridge, persister });
    }
    // A bridge connects to its region's NATS, which the gateways embed.
    await Promise.all(this.gateways.map((g) => g.start()));
    await Promise.all(this.regions.flatMap((r) => [r.bridge.start(), r.persister.start()]));
  }

  /** Stops every process: the gateways first, so that their drain still has bridges. */
  async dispose() {
    await Promise.all(this.gateways.map((g) => g.stop()));
    await Promise.all(this.regions.flatMap((r) => [r.bridge.stop(), r.persister.stop()]));
  }
}

/** Makes dir (and its parents) and returns it. */
export function ensureDir(dir) {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  return dir;
}
