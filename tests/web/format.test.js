import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GROUP_GAP_MS, dayLabel, isHttpUrl, highlight, isInlineImage, layout, linkify, roomTitle, sizeLabel } from '../../web/js/format.js';

test('only http and https URLs become links', () => {
  assert.deepEqual(linkify('see https://example.com/a?b=1 now'), [
    { text: 'see ' },
    { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
    { text: ' now' },
  ]);
  for (const text of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'ftp://host/x', 'mailto:a@b.c', 'http://']) {
    assert.ok(linkify(text).every((p) => !p.href), text);
  }
  assert.deepEqual(linkify('<img src=x onerror=alert(1)>'), [{ text: '<img src=x onerror=alert(1)>' }]);
  assert.equal(isHttpUrl('HTTPS://EXAMPLE.COM'), true);
  assert.equal(isHttpUrl('javascript://example.com/%0aalert(1)'), false);
});

test('sentence punctuation after a URL stays text; a closing parenthesis of the URL stays in it', () => {
  assert.deepEqual(linkify('(http://a.io/x).'), [
    { text: '(' },
    { text: 'http://a.io/x', href: 'http://a.io/x' },
    { text: ').' },
  ]);
  const wiki = 'https://en.wikipedia.org/wiki/Hangul_(disambiguation)';
  assert.deepEqual(linkify(`${wiki}!`), [{ text: wiki, href: wiki }, { text: '!' }]);
  assert.deepEqual(linkify('a http://x.io, b https://y.io'), [
    { text: 'a ' }, { text: 'http://x.io', href: 'http://x.io' }, { text: ', b ' },
    { text: 'https://y.io', href: 'https://y.io' },
  ]);
});

test('messages group by sender within a gap, and days get separators', () => {
  const at = (iso) => new Date(iso).toISOString();
  const base = new Date(2026, 10, 25, 10, 0).getTime();
  const msg = (msgId, senderId, offsetMs) => ({ msgId, senderId, senderName: `u${senderId}`, createdAt: at(base + offsetMs) });
  const out = layout([
    msg(1, 1, 0),
    msg(2, 1, 60_000),
    msg(3, 2, 120_000),
    msg(4, 2, 120_000 + GROUP_GAP_MS + 1),
    { notice: true, id: 1, text: 'bob joined', createdAt: at(base + 130_000 + GROUP_GAP_MS) },
    msg(5, 2, 140_000 + GROUP_GAP_MS),
    msg(6, 2, 24 * 3600_000),
  ]);
  assert.deepEqual(out.map((i) => i.kind === 'message' ? `${i.message.msgId}${i.head ? 'h' : ''}` : i.kind), [
    'day', '1h', '2', '3h', '4h', 'notice', '5h', 'day', '6h',
  ]);
});

test('day labels say today and yesterday, else the date', () => {
  const now = new Date(2026, 10, 25, 12, 0);
  assert.equal(dayLabel(new Date(2026, 10, 25, 0, 5), now), 'Today');
  assert.equal(dayLabel(new Date(2026, 10, 24, 23, 59), now), 'Yesterday');
  assert.match(dayLabel(new Date(2026, 10, 20), now, 'en-US'), /November 20/);
  assert.match(dayLabel(new Date(2025, 0, 2), now, 'en-US'), /2025/);
});

test('a direct room is named after the other person', () => {
  const room = { isDirected: true, chatName: 'alice, bob' };
  assert.equal(roomTitle(room, 'alice'), 'bob');
  assert.equal(roomTitle(room, 'bob'), 'alice');
  assert.equal(roomTitle({ isDirected: false, chatName: 'general' }, 'alice'), 'general');
});

test('file sizes read as people say them; only the images the server shows inline are shown', () => {
  assert.equal(sizeLabel(0), '0 B');
  assert.equal(sizeLabel(1023), '1023 B');
  assert.equal(sizeLabel(1536), '1.5 KB');
  assert.equal(sizeLabel(25 * 1024 * 1024), '25 MB');
  assert.equal(sizeLabel(3 * 1024 ** 4), '3072 GB');
  assert.ok(isInlineImage('image/png'));
  assert.ok(!isInlineImage('image/svg+xml'));
  assert.ok(!isInlineImage('text/html'));
});

test('search matches are cut out for highlighting, case-insensitively, and only where the text maps back', () => {
  assert.deepEqual(highlight('Deploy the API; 학교에 갔다', ['api', '학교']), [
    { text: 'Deploy the ', match: false },
    { text: 'API', match: true },
    { text: '; ', match: false },
    { text: '학교', match: true },
    { text: '에 갔다', match: false },
  ]);
  assert.deepEqual(highlight('nothing here', ['api']), [{ text: 'nothing here', match: false }]);
  assert.deepEqual(highlight('İstanbul', ['i']), [{ text: 'İstanbul', match: false }]);
  assert.deepEqual(highlight('aaa', ['a', '']), [{ text: 'aaa', match: true }]);
});
