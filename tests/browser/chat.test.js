// The web client end to end, in headless Chromium: two browser contexts as two users
// against the real daehwa binary.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, api, launch } from './lib.js';

/** How long a test waits for something the page should show. */
const PATIENCE = 10000;

let server;
let browser;
/** name → {context, page, token} */
const users = {};

before(async () => {
  // Seeding history goes faster than a person types.
  server = await Server.start({ config: '[limits]\nmessages_per_second = 1000.0\nmessage_burst = 1000\n' });
  browser = await launch();
  console.log(`# chromium ${browser.version()}, daehwa at ${server.url}`);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(name, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(PATIENCE);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
  await page.goto(server.url);
  return { context, page, errors };
}

/** Registers `name` through the login form. */
async function register(name) {
  const user = await open(name);
  const { page } = user;
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(`${name} password`);
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('navigation', { name: 'Rooms' }).waitFor();
  await assertStatus(page, /^Connected$/);
  user.token = await page.evaluate(() => JSON.parse(localStorage.getItem('daehwa.session')).token);
  users[name] = user;
  return user;
}

async function assertStatus(page, pattern) {
  await page.getByRole('status').filter({ hasText: pattern }).waitFor();
}

const nav = (page) => page.getByRole('navigation', { name: 'Rooms' });
const log = (page) => page.getByRole('log', { name: 'Messages' });
const roomLink = (page, name) => nav(page).getByRole('link', { name });

async function createRoom(page, name, type = 'public', password = '') {
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill(name);
  await page.getByLabel('Type').selectOption(type);
  if (password) await page.getByRole('dialog').getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: `# ${name}` }).waitFor();
}

async function say(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

/** The confirmed message with this text (it carries its msgId). */
function confirmed(page, text) {
  return log(page).locator('.msg[data-msg-id]').filter({ has: page.locator('.msg-text', { hasText: text }) });
}

function roomId(page) {
  return page.evaluate(() => Number(location.hash.split('/').pop()));
}

test('two users register, create and join a room, and chat both ways', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  await createRoom(alice.page, 'general');

  await bob.page.getByRole('button', { name: 'Browse rooms' }).click();
  await bob.page.getByRole('button', { name: 'Join general' }).click();
  await bob.page.getByRole('heading', { name: '# general' }).waitFor();

  await say(alice.page, 'hello bob');
  // Shown at once, then confirmed by its msgId; the other side gets it live.
  await confirmed(alice.page, 'hello bob').waitFor();
  await confirmed(bob.page, 'hello bob').waitFor();
  await say(bob.page, 'hi alice\nsecond line');
  await confirmed(alice.page, 'second line').waitFor();
  assert.equal(await confirmed(alice.page, 'second line').locator('.msg-text').textContent(), 'hi alice\nsecond line');
  // Sender grouping: bob's two lines in a row share one header.
  await say(bob.page, 'and a third');
  await confirmed(alice.page, 'and a third').waitFor();
  assert.equal(await log(alice.page).locator('.msg.head .sender', { hasText: 'bob' }).count(), 1);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test('a protected room takes its password', async () => {
  const { alice, bob } = users;
  await createRoom(alice.page, 'secret', 'protected', 'open sesame');
  await bob.page.getByRole('button', { name: 'Browse rooms' }).click();
  const dialog = bob.page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Join secret' }).click();
  await dialog.getByLabel('Password').fill('wrong guess');
  await dialog.getByRole('button', { name: 'Join', exact: true }).click();
  await dialog.getByRole('alert').filter({ hasText: /password/i }).waitFor();
  await dialog.getByLabel('Password').fill('open sesame');
  await dialog.getByRole('button', { name: 'Join', exact: true }).click();
  await bob.page.getByRole('heading', { name: '# secret' }).waitFor();
  await roomLink(bob.page, 'secret').waitFor();
});

test('unread counts appear in the room list and clear when the room is read', async () => {
  const { alice, bob } = users;
  await roomLink(bob.page, 'general').click();
  await bob.page.getByRole('heading', { name: '# general' }).waitFor();
  // alice writes in secret while bob reads general.
  await roomLink(alice.page, 'secret').click();
  await say(alice.page, 'psst one');
  await say(alice.page, 'psst two');
  await roomLink(bob.page, 'secret').filter({ hasText: '2 unread' }).waitFor();
  assert.match(await bob.page.title(), /^\(2\) /);
  await roomLink(bob.page, 'secret').click();
  await confirmed(bob.page, 'psst two').waitFor();
  await roomLink(bob.page, 'secret').filter({ hasNotText: 'unread' }).waitFor();
  // The server keeps the marker: a fresh load shows no unread count either.
  await bob.page.reload();
  await roomLink(bob.page, 'secret').waitFor();
  await assertStatus(bob.page, /^Connected$/);
  assert.doesNotMatch(await roomLink(bob.page, 'secret').textContent(), /unread/);
});

test('message text is text: markup shows as typed and runs nothing', async () => {
  const { alice, bob } = users;
  await roomLink(alice.page, 'general').click();
  await roomLink(bob.page, 'general').click();
  const evil = '<img src=x onerror=alert(1)> <script>alert(2)</script> javascript:alert(3) https://example.com/ok';
  await say(alice.page, evil);
  const message = confirmed(bob.page, '<img src=x');
  await message.waitFor();
  assert.equal(await message.locator('.msg-text').textContent(), evil);
  assert.equal(await log(bob.page).locator('img, script').count(), 0);
  const links = message.locator('a');
  assert.equal(await links.count(), 1, 'only the https URL is a link');
  assert.equal(await links.getAttribute('href'), 'https://example.com/ok');
  assert.equal(await links.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await links.getAttribute('target'), '_blank');
  assert.deepEqual(bob.errors, [], 'no alert() ran');
  assert.deepEqual(alice.errors, []);
});

test('Enter during an IME composition does not send; Shift+Enter is a new line; Enter sends', async () => {
  const { alice } = users;
  const box = alice.page.getByRole('textbox', { name: 'Message' });
  await box.fill('안녕');
  const sentBefore = await log(alice.page).locator('.msg').count();
  await box.evaluate((el) => {
    el.dispatchEvent(new CompositionEvent('compositionstart', { bubbles: true, data: '' }));
    el.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', keyCode: 13, isComposing: true, bubbles: true, cancelable: true }));
    // Safari reports the committing Enter as keyCode 229 after compositionend.
    el.dispatchEvent(new CompositionEvent('compositionend', { bubbles: true, data: '안녕' }));
    el.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', keyCode: 229, bubbles: true, cancelable: true }));
  });
  assert.equal(await box.inputValue(), '안녕');
  await box.press('Shift+Enter');
  await box.pressSequentially('하세요');
  assert.equal(await box.inputValue(), '안녕\n하세요');
  assert.equal(await log(alice.page).locator('.msg').count(), sentBefore, 'nothing was sent');
  await box.press('Enter');
  await confirmed(alice.page, '하세요').waitFor();
  assert.equal(await box.inputValue(), '');
});

test('older history loads when scrolling up', async () => {
  const { alice, bob } = users;
  await createRoom(alice.page, 'history');
  const room = await roomId(alice.page);
  for (let i = 1; i <= 130; i++) {
    await api(server, 'POST', `/api/chatrooms/${room}/messages`, { content: `old message ${i}` }, alice.token);
  }
  await alice.page.reload();
  await log(alice.page).getByText('old message 130', { exact: true }).waitFor();
  assert.equal(await log(alice.page).getByText('old message 1', { exact: true }).count(), 0, 'only the newest page at first');
  const first = log(alice.page).getByText('old message 1', { exact: true });
  for (let i = 0; i < 20 && !(await first.count()); i++) {
    await log(alice.page).evaluate((el) => { el.scrollTop = 0; });
    await alice.page.waitForTimeout(150);
  }
  await first.waitFor();
  await log(alice.page).getByText('This is the beginning of #history.').waitFor();
  const ids = await log(alice.page).locator('.msg[data-msg-id]').evaluateAll((els) => els.map((e) => Number(e.dataset.msgId)));
  assert.deepEqual(ids, Array.from({ length: 130 }, (_, i) => i + 1), 'every message once, in order');
  // The jump button brings the newest back.
  await alice.page.getByRole('button', { name: 'Jump to newest' }).click();
  await alice.page.getByRole('button', { name: 'Jump to newest' }).waitFor({ state: 'hidden' });
  void bob;
});

test('after the server restarts, both reconnect and no message is lost', async () => {
  const { alice, bob } = users;
  await roomLink(alice.page, 'general').click();
  await roomLink(bob.page, 'general').click();
  await alice.page.getByRole('heading', { name: '# general' }).waitFor();
  await bob.page.getByRole('heading', { name: '# general' }).waitFor();
  const room = await roomId(alice.page);

  await server.stop();
  await assertStatus(alice.page, /offline/i);
  await assertStatus(bob.page, /offline/i);
  // Written while the server is down: kept in the outbox, shown as waiting.
  await say(alice.page, 'written while the server was down');
  await log(alice.page).getByText('Waiting for the connection').waitFor();

  await server.restart();
  // Sent by someone else before the browsers are back: resume replays it.
  await api(server, 'POST', `/api/chatrooms/${room}/messages`, { content: 'sent during the reconnect' }, bob.token);
  for (const user of [alice, bob]) {
    await assertStatus(user.page, /^Connected$/);
    await confirmed(user.page, 'written while the server was down').waitFor();
    await confirmed(user.page, 'sent during the reconnect').waitFor();
  }
  // Exactly once each, in msgId order.
  const ids = await log(bob.page).locator('.msg[data-msg-id]').evaluateAll((els) => els.map((e) => Number(e.dataset.msgId)));
  assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b));
  assert.equal(await confirmed(bob.page, 'written while the server was down').count(), 1);
});

test('the owner kicks a member, who is told and loses the room', async () => {
  const { alice, bob } = users;
  await roomLink(alice.page, 'general').click();
  const members = alice.page.getByRole('region', { name: 'Members' });
  await members.getByText('bob').waitFor();
  await members.getByRole('button', { name: 'Actions for bob' }).click();
  for (const item of ['Kick', 'Ban', 'Mute', 'Make admin']) {
    await alice.page.getByRole('menuitem', { name: item, exact: true }).waitFor();
  }
  await alice.page.getByRole('menuitem', { name: 'Kick', exact: true }).click();
  await bob.page.getByRole('alert').filter({ hasText: 'You were kicked from general' }).waitFor();
  await roomLink(bob.page, 'general').waitFor({ state: 'detached' });
  await members.getByRole('button', { name: 'Actions for bob' }).waitFor({ state: 'detached' });
  await log(alice.page).getByText('bob was kicked').waitFor();
});

test('a direct message to someone picked from the user directory', async () => {
  const { alice, bob } = users;
  await bob.page.getByRole('button', { name: 'New direct message' }).click();
  await bob.page.getByRole('searchbox', { name: 'Search people' }).fill('ALI');
  await bob.page.getByRole('button', { name: 'Message alice' }).click();
  await bob.page.getByRole('heading', { name: 'alice' }).waitFor();
  await say(bob.page, 'just between us');
  await roomLink(alice.page, 'bob').waitFor();
  await roomLink(alice.page, 'bob').click();
  await confirmed(alice.page, 'just between us').waitFor();
});

test('offline: a loaded room reads from the saved copy after a reload without network', async () => {
  const { bob } = users;
  await roomLink(bob.page, 'secret').click();
  await confirmed(bob.page, 'psst two').waitFor();
  await bob.page.evaluate(() => navigator.serviceWorker.ready);
  // The room's page and the room list are saved shortly after they change.
  const rooms = await nav(bob.page).getByRole('link').count();
  await bob.page.waitForFunction((rooms) => new Promise((resolve) => {
    const request = indexedDB.open('daehwa');
    request.onsuccess = () => {
      const tx = request.result.transaction('kv');
      const all = tx.objectStore('kv').getAll();
      const keys = tx.objectStore('kv').getAllKeys();
      tx.oncomplete = () => resolve(
        keys.result.some((k) => String(k).startsWith('page:'))
        && all.result.some((v) => Array.isArray(v) && v.length === rooms && v.every((r) => r.chatName)),
      );
    };
  }), rooms);
  await bob.context.setOffline(true);
  await bob.page.reload();

  await bob.page.getByRole('heading', { name: '# secret' }).waitFor();
  await confirmed(bob.page, 'psst two').waitFor();
  await roomLink(bob.page, 'general').waitFor({ state: 'detached' });
  await roomLink(bob.page, 'secret').waitFor();
  await assertStatus(bob.page, /offline/i);
  // Written offline: waits, then goes when the network is back.
  await say(bob.page, 'from the tunnel');
  await log(bob.page).getByText('Waiting for the connection').waitFor();
  await bob.context.setOffline(false);
  await assertStatus(bob.page, /^Connected$/);
  await confirmed(bob.page, 'from the tunnel').waitFor();
  await roomLink(users.alice.page, 'secret').click();
  await confirmed(users.alice.page, 'from the tunnel').waitFor();
});

test('log out forgets the session', async () => {
  const { bob } = users;
  await bob.page.getByRole('button', { name: 'Log out' }).click();
  await bob.page.getByRole('button', { name: 'Log in' }).waitFor();
  await bob.page.reload();
  await bob.page.getByRole('button', { name: 'Log in' }).waitFor();
  await bob.page.getByLabel('Username').fill('bob');
  await bob.page.getByLabel('Password').fill('bob password');
  await bob.page.getByRole('button', { name: 'Log in' }).click();
  await roomLink(bob.page, 'secret').waitFor();
});
