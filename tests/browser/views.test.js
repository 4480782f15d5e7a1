// Accessibility (axe-core) of the login, room and members views, the phone layout,
// and the screenshots of the README: light and dark, desktop and phone. With
// SCREENSHOTS=1 they are written to docs/screenshots/, otherwise to a temp dir.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Server, api, launch } from './lib.js';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const SHOTS = process.env.SCREENSHOTS === '1'
  ? resolve(import.meta.dirname, '../../docs/screenshots')
  : mkdtempSync(join(tmpdir(), 'daehwa-shots-'));
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 780 };

let server;
let browser;
let alice;
let bob;
let room;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await Server.start();
  browser = await launch();
  alice = await api(server, 'POST', '/api/auth/register', { username: 'minji', password: 'minji password' });
  bob = await api(server, 'POST', '/api/auth/register', { username: 'daniel', password: 'daniel password' });
  const carol = await api(server, 'POST', '/api/auth/register', { username: 'sora', password: 'sora password' });
  room = (await api(server, 'POST', '/api/chatrooms/new', { chatType: 'public', chatName: 'design', isDirected: false }, alice.token)).chatSeq;
  await api(server, 'POST', '/api/chatrooms/new', { chatType: 'protected', chatName: 'leads', password: 'secret pass', isDirected: false }, alice.token);
  const other = (await api(server, 'POST', '/api/chatrooms/new', { chatType: 'public', chatName: 'random', isDirected: false }, bob.token)).chatSeq;
  await api(server, 'PUT', `/api/chatrooms/join/${other}`, {}, alice.token);
  for (const user of [bob, carol]) await api(server, 'PUT', `/api/chatrooms/join/${room}`, {}, user.token);
  await api(server, 'PUT', `/api/chatrooms/${room}/admins/${bob.userId}`, null, alice.token);
  const lines = [
    [bob, 'Morning! The new onboarding mockups are up: https://example.com/mockups/onboarding'],
    [bob, 'Feedback welcome before Thursday.'],
    [alice, 'Looks great. The second step feels long though.'],
    [carol, '동의해요. 두 번째 단계를 둘로 나누면 어떨까요?'],
    [alice, 'Good idea, let us try that.\nI will update the flow tonight.'],
  ];
  for (const [user, content] of lines) {
    await api(server, 'POST', `/api/chatrooms/${room}/messages`, { content }, user.token);
  }
  await api(server, 'POST', `/api/chatrooms/${other}/messages`, { content: 'Lunch at 12?' }, bob.token);
  await api(server, 'POST', '/api/chatrooms/new', { isDirected: true, targetUserId: carol.userId }, alice.token);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function page({ viewport = DESKTOP, colorScheme = 'light', session = alice } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  const p = await context.newPage();
  p.setDefaultTimeout(10000);
  await p.goto(server.url);
  if (session) {
    await p.evaluate((s) => localStorage.setItem('daehwa.session', JSON.stringify(s)), session);
    await p.goto(`${server.url}/#/rooms/${room}`);
    await p.reload();
    await p.getByRole('status').filter({ hasText: /^Connected$/ }).waitFor();
    await p.getByRole('log', { name: 'Messages' }).getByText('update the flow tonight').waitFor();
  } else {
    await p.getByRole('button', { name: 'Log in' }).waitFor();
  }
  return { context, page: p };
}

/** axe-core's serious and critical violations on the page. CDP evaluation is not
 * subject to the page's CSP, which forbids injected scripts. */
async function violations(p) {
  await p.evaluate(AXE);
  const result = await p.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('axe finds no serious or critical violation on the login, room and members views', async () => {
  for (const colorScheme of ['light', 'dark']) {
    const login = await page({ session: null, colorScheme });
    assert.deepEqual(await violations(login.page), [], `login (${colorScheme})`);
    await login.context.close();

    const chat = await page({ colorScheme });
    const members = chat.page.getByRole('region', { name: 'Members' });
    await members.getByRole('button', { name: 'Actions for daniel' }).waitFor();
    assert.deepEqual(await violations(chat.page), [], `room and members (${colorScheme})`);
    await members.getByRole('button', { name: 'Actions for sora' }).click();
    await chat.page.getByRole('menuitem', { name: 'Mute' }).waitFor();
    assert.deepEqual(await violations(chat.page), [], `members menu (${colorScheme})`);
    await chat.page.keyboard.press('Escape');
    await chat.page.getByRole('button', { name: 'New room' }).click();
    await chat.page.getByLabel('Room name').waitFor();
    assert.deepEqual(await violations(chat.page), [], `new room dialog (${colorScheme})`);
    await chat.context.close();
  }
});

test('the keyboard reaches the composer and the members menu', async () => {
  const { context, page: p } = await page();
  await p.getByRole('textbox', { name: 'Message' }).focus();
  await p.keyboard.type('typed with the keyboard');
  await p.keyboard.press('Enter');
  await p.getByRole('log', { name: 'Messages' }).locator('.msg[data-msg-id]', { hasText: 'typed with the keyboard' }).waitFor();
  const actions = p.getByRole('button', { name: 'Actions for sora' });
  await actions.focus();
  await p.keyboard.press('Enter');
  await p.getByRole('menuitem', { name: 'Kick' }).waitFor();
  assert.equal(await p.evaluate(() => document.activeElement.getAttribute('role')), 'menuitem');
  await p.keyboard.press('ArrowDown');
  assert.equal(await p.evaluate(() => document.activeElement.textContent), 'Ban');
  await p.keyboard.press('Escape');
  assert.equal(await p.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Actions for sora');
  await context.close();
});

test('on a phone the rooms and the chat are one column each', async () => {
  const { context, page: p } = await page({ viewport: PHONE });
  await p.getByRole('navigation', { name: 'Rooms' }).waitFor({ state: 'hidden' });
  await p.getByRole('button', { name: 'Back to rooms' }).click();
  await p.getByRole('navigation', { name: 'Rooms' }).waitFor();
  await p.getByRole('log', { name: 'Messages' }).waitFor({ state: 'hidden' });
  const width = await p.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `no horizontal scrolling (${width}px)`);
  await context.close();
});

test('screenshots of the main views, light and dark, desktop and phone', async () => {
  for (const colorScheme of ['light', 'dark']) {
    const login = await page({ session: null, colorScheme });
    await login.page.screenshot({ path: join(SHOTS, `login-${colorScheme}.png`) });
    await login.context.close();

    const desktop = await page({ colorScheme });
    await desktop.page.getByRole('region', { name: 'Members' }).getByText('sora').waitFor();
    await desktop.page.screenshot({ path: join(SHOTS, `room-${colorScheme}.png`) });
    await desktop.context.close();

    const phone = await page({ viewport: PHONE, colorScheme });
    await phone.page.screenshot({ path: join(SHOTS, `phone-room-${colorScheme}.png`) });
    await phone.page.getByRole('button', { name: 'Back to rooms' }).click();
    await phone.page.getByRole('navigation', { name: 'Rooms' }).waitFor();
    await phone.page.screenshot({ path: join(SHOTS, `phone-rooms-${colorScheme}.png`) });
    await phone.context.close();
  }
  console.log(`# screenshots in ${SHOTS}`);
});
