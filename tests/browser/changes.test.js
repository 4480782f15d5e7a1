// Edits, deletes, reactions, typing, mentions and presence in the web client, end to
// end in headless Chromium: two browser contexts as two users against the real
// daehwa binary.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, composer, log, register as registerIn } from './lib.js';

let server;
let browser;

before(async () => {
  server = await Server.start({ config: '[server]\npresence_grace = "1s"\n' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const register = (name) => registerIn(browser, server, name);

const message = (page, text) => log(page).locator('.msg[data-msg-id]').filter({ has: page.locator('.msg-text', { hasText: text }) });

async function say(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

test('edit, delete, react, typing and mentions, seen from both sides', async () => {
  const alice = await register('alice');
  const carol = await register('carol');
  await alice.page.getByRole('button', { name: 'New room' }).click();
  await alice.page.getByLabel('Room name').fill('team');
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await alice.page.getByRole('heading', { name: '# team' }).waitFor();
  await carol.page.getByRole('button', { name: 'Browse rooms' }).click();
  await carol.page.getByRole('button', { name: 'Join team' }).click();
  await carol.page.getByRole('heading', { name: '# team' }).waitFor();

  await say(alice.page, 'helo team');
  await message(carol.page, 'helo team').waitFor();

  // Typing reaches the other side.
  await composer(carol.page).pressSequentially('one mo');
  await alice.page.locator('.typing', { hasText: 'carol is typing…' }).waitFor();

  // The up arrow in an empty composer edits one's last message.
  await composer(alice.page).fill('');
  await composer(alice.page).press('ArrowUp');
  assert.equal(await composer(alice.page).inputValue(), 'helo team');
  await composer(alice.page).fill('hello team');
  await composer(alice.page).press('Enter');
  for (const page of [alice.page, carol.page]) {
    await message(page, 'hello team').locator('.edited', { hasText: '(edited)' }).waitFor();
  }

  // A reaction from the message's actions, shown under it on both sides.
  await message(carol.page, 'hello team').hover();
  await message(carol.page, 'hello team').getByRole('button', { name: 'React with 👍' }).click();
  await message(alice.page, 'hello team').getByRole('button', { name: /^👍 1, by carol$/ }).waitFor();
  // Clicking one's own reaction takes it back.
  await message(carol.page, 'hello team').getByRole('button', { name: /^👍 1/ }).click();
  await message(alice.page, 'hello team').locator('.reaction').waitFor({ state: 'detached' });

  // A mention is highlighted for the one mentioned; member names autocomplete.
  await composer(carol.page).fill('');
  await carol.page.getByRole('button', { name: 'Members' }).click();
  await carol.page.locator('.member', { hasText: 'alice' }).waitFor();
  await composer(carol.page).pressSequentially('@al');
  await carol.page.getByRole('listbox', { name: 'Mention' }).getByRole('option', { name: '@alice' }).waitFor();
  await composer(carol.page).press('Tab');
  assert.equal(await composer(carol.page).inputValue(), '@alice ');
  await composer(carol.page).pressSequentially('have a look');
  await composer(carol.page).press('Enter');
  await message(alice.page, 'have a look').and(alice.page.locator('.mentioned')).waitFor();
  assert.equal(await message(carol.page, 'have a look').and(carol.page.locator('.mentioned')).count(), 0);

  // Deleting from the message's actions leaves a tombstone on both sides.
  await message(alice.page, 'hello team').hover();
  await message(alice.page, 'hello team').getByRole('button', { name: 'Delete message' }).click();
  await alice.page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  for (const page of [alice.page, carol.page]) {
    await log(page).locator('.msg-text.deleted', { hasText: 'This message was deleted.' }).waitFor();
    assert.equal(await log(page).getByText('hello team').count(), 0);
  }

  // Presence: carol shows online in alice's members list.
  await alice.page.getByRole('button', { name: 'Members' }).click();
  await alice.page.locator('.member', { hasText: 'carol' }).locator('.avatar.online').waitFor();

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(carol.errors, []);
});
