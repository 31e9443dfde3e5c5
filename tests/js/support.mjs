// Helpers shared by the client library tests: a real chatd process on a free port with
// its own database, nginx in front of several nodes, a TCP proxy that can lose traffic,
// and checks of what each client received.
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

import { ChatdClient } from '../../src/web/chatd.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHATD_BIN = process.env.CHATD_BIN || path.join(ROOT, 'target/release/chatd');
export const PG_URL = (process.env.TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432').replace(/\/+$/, '');

const SECRETS = {
  JWT_ACCESS_SECRET: 'js-test-access-secret-0123456789abcdefghij',
  JWT_REFRESH_SECRET: 'js-test-refresh-secret-0123456789abcdefghi',
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port nobody listens on right now. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Poll `fn` until it returns a truthy value; fail with `what` after `timeout` ms. */
export async function waitFor(fn, { timeout = 20_000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(interval);
  }
}

function psql(sql) {
  return new Promise((resolve, reject) => {
    execFile('psql', [`${PG_URL}/postgres`, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], (err, stdout, stderr) => {
      if (err) reject(new Error(`psql failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** A fresh database chatd_js_<random>, dropped when the test ends (pass or fail). */
export async function createDatabase(t) {
  const name = `chatd_js_${randomBytes(6).toString('hex')}`;
  await psql(`CREATE DATABASE ${name}`);
  t.after(() => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return `${PG_URL}/${name}`;
}

/** A temporary directory removed when the test ends. */
export function tempDir(t, prefix = 'chatd-js-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One chatd process; start/stop it as often as a test needs (same port, same database). */
export class ChatdNode {
  constructor(t, { databaseUrl, port, config, name = 'node', dir }) {
    this.databaseUrl = databaseUrl;
    this.port = port;
    this.name = name;
    this.dir = dir;
    this.configFile = null;
    if (config) {
      this.configFile = path.join(dir, `${name}.toml`);
      fs.writeFileSync(this.configFile, config);
    }
    this.logFile = path.join(dir, `${name}.log`);
    this.proc = null;
    t.after(() => this.kill());
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start({ timeout = 30_000 } = {}) {
    if (!fs.existsSync(CHATD_BIN)) throw new Error(`chatd binary not found at ${CHATD_BIN} (build it or set CHATD_BIN)`);
    const args = this.configFile ? ['--config', this.configFile, 'serve'] : ['serve'];
    const log = fs.openSync(this.logFile, 'a');
    const proc = spawn(CHATD_BIN, args, {
      env: {
        ...process.env,
        ...SECRETS,
        DATABASE_URL: this.databaseUrl,
        PORT: String(this.port),
        CHATD_NODE_ID: this.name,
        RUST_LOG: process.env.CHATD_LOG || 'warn',
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.proc = proc;
    proc.exited = once(proc, 'exit');
    let dead = false;
    proc.exited.then(() => { dead = true; });
    await waitFor(async () => {
      if (dead) throw new Error(`chatd ${this.name} exited at start-up:\n${this.logTail()}`);
      const res = await fetch(`${this.url}/ready`).catch(() => null);
      return res && res.status === 200;
    }, { timeout, interval: 100, what: `chatd ${this.name} to be ready` }).catch((e) => {
      throw new Error(`${e.message}\n${this.logTail()}`);
    });
  }

  /** SIGTERM (graceful) and wait for the exit; returns the exit code. */
  async stop({ signal = 'SIGTERM', timeout = 20_000 } = {}) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
    const [code] = await proc.exited;
    clearTimeout(timer);
    this.proc = null;
    return code;
  }

  kill() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }

  logTail(lines = 30) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

/** Start `count` nodes on one fresh database. */
export async function startNodes(t, count, { config } = {}) {
  const dir = tempDir(t);
  const databaseUrl = await createDatabase(t);
  const nodes = [];
  for (let i = 1; i <= count; i++) {
    nodes.push(new ChatdNode(t, { databaseUrl, port: await freePort(), config, name: `node${i}`, dir }));
  }
  // One at a time: the first applies the migrations.
  for (const n of nodes) await n.start();
  return { nodes, dir, databaseUrl };
}

/** nginx in front of `ports` (REST and /ws), in the foreground, everything in `dir`. */
export async function startNginx(t, dir, ports) {
  const ngx = path.join(dir, 'nginx');
  for (const d of ['', 'logs', 'temp']) fs.mkdirSync(path.join(ngx, d), { recursive: true });
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = path.join(ngx, 'nginx.conf');
  fs.writeFileSync(conf, `
daemon off;
worker_processes 1;
pid ${ngx}/logs/nginx.pid;
error_log ${ngx}/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${ngx}/temp/client_body;
    proxy_temp_path ${ngx}/temp/proxy;
    fastcgi_temp_path ${ngx}/temp/fastcgi;
    uwsgi_temp_path ${ngx}/temp/uwsgi;
    scgi_temp_path ${ngx}/temp/scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
    upstream chatd {
        least_conn;
${ports.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n')}
    }
    server {
        listen 127.0.0.1:${port};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout;
        location /ws {
            proxy_pass http://chatd;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }
        location / {
            proxy_pass http://chatd;
        }
    }
}
`);
  const log = fs.openSync(path.join(ngx, 'logs', 'stderr.log'), 'a');
  const proc = spawn('nginx', ['-c', conf, '-p', ngx, '-e', path.join(ngx, 'logs', 'error.log')], {
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const exited = once(proc, 'exit');
  let dead = false;
  exited.then(() => { dead = true; });
  t.after(async () => {
    if (!dead) {
      proc.kill('SIGQUIT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (dead) {
      const err = fs.readFileSync(path.join(ngx, 'logs', 'error.log'), 'utf8');
      throw new Error(`nginx exited at start-up: ${err}`);
    }
    const res = await fetch(`${url}/health`).catch(() => null);
    return res && res.status === 200;
  }, { timeout: 10_000, what: 'nginx' });
  return { url, port, proc };
}

/**
 * A TCP proxy that can misbehave: `pass` forwards both ways, `mute` drops what the
 * server sends (the server stores and acks, the client never hears of it), `refuse`
 * closes new connections at once. `cut()` drops every open connection.
 */
export class FlakyProxy {
  constructor(t, targetPort) {
    this.targetPort = targetPort;
    this.mode = 'pass';
    this.pairs = new Set();
    this.server = net.createServer((client) => this.#accept(client));
    t.after(() => this.close());
  }

  async listen() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  #accept(client) {
    if (this.mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      if (this.mode !== 'mute') client.write(d);
    });
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  }

  cut() {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy ? client.resetAndDestroy() : client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  close() {
    this.cut();
    this.server.close();
  }
}

let counter = 0;

/** A client with quick reconnects, closed when the test ends. */
export function newClient(t, url, options = {}) {
  const client = new ChatdClient({ url, reconnect: { baseMs: 100, maxMs: 1000 }, ...options });
  t.after(() => client.close());
  return client;
}

/** Register a fresh user on a new client. */
export async function registerClient(t, url, prefix = 'user', options = {}) {
  const client = newClient(t, url, options);
  const tag = `${prefix}${process.pid}x${++counter}${randomBytes(3).toString('hex')}`;
  await client.register({ username: tag, email: `${tag}@example.com`, password: 'password-123' });
  return client;
}

/**
 * Record what a client delivers for one room, flagging duplicates and disorder. Every
 * stream entry counts for the order (`seqs`); system entries (membership changes) are
 * counted apart from the messages (`contents`).
 */
export function record(client, roomId) {
  const rec = { seqs: [], contents: [], system: 0, problems: [] };
  client.on('message', (m) => {
    if (m.room_id !== roomId) return;
    // The first entry may be anywhere (a join from the newest page); then no gaps.
    const last = rec.seqs.length ? rec.seqs[rec.seqs.length - 1] : m.seq - 1;
    if (m.seq !== last + 1) rec.problems.push(`seq ${m.seq} after ${last}`);
    rec.seqs.push(m.seq);
    if (m.kind === 'system') rec.system++;
    else rec.contents.push(m.content);
  });
  return rec;
}

/** Every entry exactly once, in order with no gap, and the expected messages. */
export function assertComplete(rec, expected, who) {
  assert.deepEqual(rec.problems, [], `${who}: delivery problems`);
  assert.equal(rec.contents.length, expected.length, `${who}: message count`);
  rec.seqs.forEach((s, i) => assert.equal(s, rec.seqs[0] + i, `${who}: seq at ${i}`));
  assert.deepEqual([...rec.contents].sort(), [...expected].sort(), `${who}: contents`);
}

/** The stored messages of a room through REST, ascending (system entries left out). */
export async function storedHistory(client, roomId) {
  const all = [];
  let cursor;
  for (;;) {
    const page = await client.api.messages(roomId, { cursor, limit: 100 });
    all.push(...page.messages.filter((m) => m.kind !== 'system'));
    if (page.next_cursor == null) break;
    cursor = page.next_cursor;
  }
  return all.reverse();
}

/**
 * Every client joins `roomId` from the start; `senders` take turns sending `total`
 * messages; `midway()` runs (not awaited) after `at` sends. Then: every send acked,
 * every client saw 1..total exactly once in order, and the room stores each once.
 */
export async function streamThrough(t, { clients, senders, roomId, total, at, midway, pauseMs = 10 }) {
  const recs = clients.map((c) => record(c, roomId));
  const reconnects = clients.map(() => 0);
  clients.forEach((c, i) => c.on('state', ({ state }) => { if (state === 'reconnecting') reconnects[i]++; }));
  await Promise.all(clients.map((c) => c.connect()));
  await Promise.all(clients.map((c) => c.join(roomId, { since: 0 })));
  const expected = [];
  const acks = [];
  let fault;
  for (let i = 0; i < total; i++) {
    const content = `message ${i} from sender ${i % senders.length}`;
    expected.push(content);
    acks.push(senders[i % senders.length].send(roomId, content));
    if (i === at) fault = midway();
    await sleep(pauseMs);
  }
  await fault;
  let timer;
  const acked = await Promise.race([
    Promise.all(acks),
    new Promise((_, reject) => {
      timer = setTimeout(() => {
        const detail = clients.map((c, i) => `client ${i}: state ${c.state}, pending ${c.pendingCount}, received ${recs[i].contents.length}`);
        reject(new Error(`sends not acknowledged within 30 s\n${detail.join('\n')}`));
      }, 30_000);
    }),
  ]).finally(() => clearTimeout(timer));
  // The room's membership entries (system entries) come first: the messages follow them.
  const base = Math.min(...acked.map((a) => a.seq)) - 1;
  assert.deepEqual(acked.map((a) => a.seq).sort((a, b) => a - b), expected.map((_, i) => base + i + 1), 'acked seqs');
  await waitFor(() => recs.every((r) => r.contents.length >= total), {
    timeout: 30_000,
    what: `every client to receive ${total} messages (got ${recs.map((r) => r.contents.length)})`,
  });
  await sleep(300); // room for a late duplicate to show up
  recs.forEach((r, i) => assertComplete(r, expected, `client ${i}`));
  const stored = await storedHistory(clients[0], roomId);
  assert.equal(stored.length, total, 'stored messages');
  assert.deepEqual(stored.map((m) => m.seq), expected.map((_, i) => base + i + 1), 'stored seqs');
  assert.equal(new Set(stored.map((m) => m.client_msg_id)).size, total, 'stored client_msg_ids are unique');
  return { recs, reconnects, expected };
}
