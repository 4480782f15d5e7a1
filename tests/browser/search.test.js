// Search in the web client, end to end in headless Chromium against the real
// daehwa binary: `/` focuses the box, results show the room, the sender and the
// match highlighted (as text), and choosing one opens its room.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, composer, log, register as registerIn } from './lib.js';

let server;
let browser;

before(async () => {
  server = await Server.start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const register = (name) => registerIn(browser, server, name);


async function createRoom(page, name) {
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill(name);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: `# ${name}` }).waitFor();
}

async function say(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
  await log(page).locator('.msg-text', { hasText: text }).waitFor();
}

test('slash focuses search; a Korean word inside a message is found, highlighted, and opens its room', async () => {
  const alice = await register('alice');
  const { page } = alice;
  await createRoom(page, 'school');
  await say(page, '내일 학교에 갔다 <b>온다</b>');
  await createRoom(page, 'ops');
  await say(page, 'deploy the API today');

  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press('/');
  const box = page.getByRole('searchbox', { name: 'Search messages' });
  assert.equal(await box.evaluate((el) => el === document.activeElement), true, '/ focuses the box');
  await box.fill('학교');
  await box.press('Enter');

  const results = page.getByRole('region', { name: 'Search results' });
  const hit = results.locator('.search-result');
  await hit.first().waitFor();
  assert.equal(await hit.count(), 1);
  assert.equal(await hit.locator('.search-room').textContent(), 'school');
  assert.equal(await hit.locator('.search-sender').textContent(), 'alice');
  assert.equal(await hit.locator('mark').textContent(), '학교');
  // The text is text: the markup in the message is not markup here.
  assert.equal(await hit.locator('.search-text').textContent(), '내일 학교에 갔다 <b>온다</b>');
  assert.equal(await hit.locator('.search-text b').count(), 0);

  await hit.click();
  await page.getByRole('heading', { name: '# school' }).waitFor();

  // A word that is nowhere: said so.
  await box.fill('nowhere');
  await box.press('Enter');
  await results.getByText('No messages found.').waitFor();
  // Escape clears and hides the results.
  await box.press('Escape');
  await results.waitFor({ state: 'hidden' });
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});

test('a result far back in a long room opens the room at that message', async () => {
  // Its own server: 150 messages at once are past the default message rate.
  const busy = await Server.start({ config: '[limits]\nmessages_per_second = 1000.0\nmessage_burst = 1000\n' });
  const { context, page, errors } = await registerIn(browser, busy, 'carol');
  await createRoom(page, 'archive');

  // The needle first, then 150 messages over it (three pages of history).
  const needle = await page.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem('daehwa.session'));
    const room = Number(location.hash.match(/\d+/)[0]);
    const send = async (content) => {
      const reply = await fetch(`/api/chatrooms/${room}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content }),
      });
      if (!reply.ok) throw new Error(`${reply.status} ${await reply.text()}`);
      return (await reply.json()).msgId;
    };
    const first = await send('지난주 회의록은 여기에 있어요');
    for (let i = 0; i < 150; i++) await send(`filler ${i}`);
    return first;
  });
  await log(page).locator('.msg-text', { hasText: 'filler 149' }).waitFor();

  const box = page.getByRole('searchbox', { name: 'Search messages' });
  await box.fill('회의록');
  await box.press('Enter');
  const hit = page.getByRole('region', { name: 'Search results' }).locator('.search-result');
  await hit.first().waitFor();
  await hit.first().click();

  const found = log(page).locator(`[data-msg-id="${needle}"]`);
  await found.waitFor();
  await page.waitForFunction((id) => {
    const el = document.querySelector(`[data-msg-id="${id}"]`);
    const logEl = el?.closest('[role="log"]');
    if (!el || !logEl) return false;
    const a = el.getBoundingClientRect();
    const b = logEl.getBoundingClientRect();
    return a.top >= b.top && a.bottom <= b.bottom;
  }, needle);
  assert.deepEqual(errors, []);
  await context.close();
  await busy.close();
});
