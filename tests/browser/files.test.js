// Files in the web client, end to end in headless Chromium: one user uploads an
// image and a text file from the composer, sends them with a message, and another
// member sees the image shown (fetched with the files cookie) and the text file as a
// download link; then a pasted and a dropped screenshot, each sent alone.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, log, register as registerIn } from './lib.js';

/** A 1×1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

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


test('files attached, pasted or dropped reach the room: images shown, others as links', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  await alice.page.getByRole('button', { name: 'New room' }).click();
  await alice.page.getByLabel('Room name').fill('team');
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await alice.page.getByRole('heading', { name: '# team' }).waitFor();
  await bob.page.getByRole('button', { name: 'Browse rooms' }).click();
  await bob.page.getByRole('button', { name: 'Join team' }).click();
  await bob.page.getByRole('heading', { name: '# team' }).waitFor();

  // The button opens the (hidden) file input; the test hands the input its files.
  await alice.page.getByRole('button', { name: 'Attach files' }).waitFor();
  await alice.page.getByLabel('Choose files to attach').setInputFiles([
    { name: 'dot.png', mimeType: 'image/png', buffer: PNG },
    { name: 'notes <img src=x onerror=alert(1)>.txt', mimeType: 'text/plain', buffer: Buffer.from('meeting notes') },
  ]);
  const uploads = alice.page.getByRole('list', { name: 'Files to send' });
  await uploads.getByText('dot.png').waitFor();
  // Uploaded: each shows its size once the server has it.
  await uploads.getByText('70 B').waitFor();
  await uploads.getByText('13 B').waitFor();
  const composer = alice.page.getByRole('textbox', { name: 'Message' });
  await composer.fill('the screenshot and the notes');
  await composer.press('Enter');
  // Sent: the list of files to send is empty again.
  await uploads.waitFor({ state: 'hidden' });

  for (const { page } of [alice, bob]) {
    const message = log(page).locator('.msg[data-msg-id]').filter({ hasText: 'the screenshot and the notes' });
    const image = message.getByRole('img', { name: 'dot.png' });
    await image.waitFor();
    // Loaded with the files cookie: <img> sends no bearer token.
    await page.waitForFunction((img) => img.complete && img.naturalWidth === 1, await image.elementHandle());
    const link = message.getByRole('link', { name: 'notes <img src=x onerror=alert(1)>.txt (13 B)' });
    await link.waitFor();
    assert.match(await link.getAttribute('href'), /^\/api\/files\/\d+$/);
    // The name is text, not markup.
    assert.equal(await message.locator('img').count(), 1);
  }

  // A screenshot pasted into the composer, then one dropped on the room, each sent
  // alone (no text).
  for (const how of ['paste', 'drop']) {
    await alice.page.evaluate(({ how, bytes }) => {
      const file = new File([new Uint8Array(bytes)], `${how}.png`, { type: 'image/png' });
      const data = new DataTransfer();
      data.items.add(file);
      const composer = document.querySelector('textarea[aria-label="Message"]');
      const event = how === 'paste'
        ? new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true })
        : new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true });
      composer.dispatchEvent(event);
    }, { how, bytes: [...PNG] });
    await uploads.getByText(`${how}.png`).waitFor();
    await uploads.getByText('70 B').waitFor();
    await composer.press('Enter');
    await uploads.waitFor({ state: 'hidden' });
    const image = log(bob.page).getByRole('img', { name: `${how}.png` });
    await image.waitFor();
    await bob.page.waitForFunction((img) => img.complete && img.naturalWidth === 1, await image.elementHandle());
  }

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
});
