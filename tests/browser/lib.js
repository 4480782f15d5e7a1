// What the browser tests share: the real daehwa binary on port 0 with a temp data
// dir, and Debian's Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
export const BINARY = process.env.DAEHWA_BIN ?? join(ROOT, 'target/debug/daehwa');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** How long a test waits for the server to start. */
const START_TIMEOUT_MS = 15000;

const ANSI = /\x1b\[[0-9;]*m/g;

/** A running daehwa: `url`, `stop()`, `restart()` on the same port and data.
 * `config` is the text of a TOML configuration file to start with. */
export class Server {
  static async start({ args = [], config = '' } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'daehwa-browser-'));
    if (config) {
      writeFileSync(join(dir, 'daehwa.toml'), config);
      args = ['--config', join(dir, 'daehwa.toml'), ...args];
    }
    const server = new Server(join(dir, 'data'), dir, args);
    await server.spawn('127.0.0.1:0');
    return server;
  }

  constructor(dataDir, tmp, args) {
    Object.assign(this, { dataDir, tmp, args, child: null, logs: '' });
  }

  spawn(bind) {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(BINARY, ['serve', '--bind', bind, '--data-dir', this.dataDir, ...this.args], {
        env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      this.child = child;
      // A test run that dies must not leave its servers behind.
      const reap = () => child.kill('SIGKILL');
      process.once('exit', reap);
      child.once('exit', () => process.removeListener('exit', reap));
      let buffer = '';
      const timer = setTimeout(() => reject(new Error(`daehwa did not start:\n${this.logs}`)), START_TIMEOUT_MS);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk) => {
        this.logs += chunk;
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(ANSI, '');
          buffer = buffer.slice(newline + 1);
          const match = line.includes('listening') && line.match(/addr[=:]\s*"?(\d+\.\d+\.\d+\.\d+:\d+)/);
          if (match) {
            clearTimeout(timer);
            this.addr = match[1];
            this.url = `http://${this.addr}`;
            resolvePromise();
          }
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (!this.addr) reject(new Error(`daehwa exited with ${code}:\n${this.logs}`));
      });
    });
  }

  /** SIGTERM (a graceful shutdown) and wait for the exit. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    this.child = null;
  }

  /** Stops and starts again on the same address and data. */
  async restart() {
    await this.stop();
    await this.spawn(this.addr);
  }

  async close() {
    await this.stop();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Headless Chromium with a fresh profile. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return browser;
}

/** A REST helper for setting up data fast (register, rooms, messages). */
export async function api(server, method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${server.url}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** How long a page waits for what a test expects. */
export const PATIENCE = 10000;

/** The chat's message log and composer of a page. */
export const log = (page) => page.getByRole('log', { name: 'Messages' });
export const composer = (page) => page.getByRole('textbox', { name: 'Message' });

/**
 * Registers `name` through the login form of `server` in a new desktop-sized browser
 * context: `{context, page, errors}`, `errors` collecting the page's uncaught errors.
 */
export async function register(browser, server, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(PATIENCE);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server.url);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(`${name} password`);
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('navigation', { name: 'Rooms' }).waitFor();
  return { context, page, errors };
}
