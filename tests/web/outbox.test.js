import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Outbox, newClientMsgId } from '../../web/js/outbox.js';

test('clientMsgIds are unique and within the server limit of 64 bytes', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newClientMsgId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.ok(id.length <= 64 && /^c-[0-9a-f]{32}$/.test(id), id);
});

test('a message stays pending until a chat event confirms its clientMsgId', () => {
  const outbox = new Outbox();
  const a = outbox.add(1, 'first', { clientMsgId: 'a' });
  outbox.add(2, 'elsewhere', { clientMsgId: 'b' });
  outbox.add(1, 'second', { clientMsgId: 'c' });
  assert.equal(a.state, 'pending');
  assert.deepEqual(outbox.due().map((e) => e.clientMsgId), ['a', 'b', 'c'], 'resent in the order written');
  assert.deepEqual(outbox.forRoom(1).map((e) => e.content), ['first', 'second']);
  assert.equal(outbox.confirm('a').content, 'first');
  assert.equal(outbox.confirm('a'), undefined, 'a second confirmation (a resend answered) is harmless');
  assert.deepEqual(outbox.due().map((e) => e.clientMsgId), ['b', 'c']);
});

test('a refused message fails, unless the refusal is transient; failed ones can be retried or dropped', () => {
  const outbox = new Outbox();
  outbox.add(1, 'x', { clientMsgId: 'a' });
  outbox.add(1, 'y', { clientMsgId: 'b' });
  assert.equal(outbox.refuse('a', { error: 'rate_limited', message: 'slow down' }).state, 'pending');
  const failed = outbox.refuse('b', { error: 'muted', message: 'you are muted' });
  assert.equal(failed.state, 'failed');
  assert.equal(failed.error, 'you are muted');
  assert.deepEqual(outbox.due().map((e) => e.clientMsgId), ['a']);
  outbox.retry('b');
  assert.deepEqual(outbox.due().map((e) => e.clientMsgId), ['a', 'b']);
  outbox.discard('a');
  assert.deepEqual(outbox.due().map((e) => e.clientMsgId), ['b']);
  assert.equal(outbox.refuse('zzz', { error: 'muted' }), undefined);
});

test('the outbox survives a round trip through storage, and a room can be dropped', () => {
  const outbox = new Outbox();
  outbox.add(1, 'x', { clientMsgId: 'a', now: new Date(0) });
  outbox.add(2, 'y', { clientMsgId: 'b' });
  const restored = new Outbox(JSON.parse(JSON.stringify(outbox)));
  assert.deepEqual(restored.due().map((e) => [e.clientMsgId, e.chatSeq, e.content]), [['a', 1, 'x'], ['b', 2, 'y']]);
  assert.equal(restored.entries.get('a').createdAt, '1970-01-01T00:00:00.000Z');
  restored.dropRoom(1);
  assert.deepEqual(restored.due().map((e) => e.clientMsgId), ['b']);
});
