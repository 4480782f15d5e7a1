import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyChange, backoffMs, hasOlder, mentions, mergeMessages, mergeRoom, newestSeq, resumeParam, roomAfterChat,
  roomAfterRead, sortRooms,
  unreadOf, withNewestPage,
} from '../../web/js/state.js';

const m = (msgId, extra = {}) => ({ msgId, senderId: 1, content: `m${msgId}`, ...extra });

test('unread counts come from the server, else from the read marker', () => {
  assert.equal(unreadOf({ lastMsgId: 10, lastReadMsgId: 7, unreadCount: 3 }), 3);
  assert.equal(unreadOf({ lastMsgId: 10, lastReadMsgId: 7 }), 3);
  assert.equal(unreadOf({ lastMsgId: 10 }), 0, 'a server without read markers shows none');
});

test('a message from someone else counts as unread until read; my own never does', () => {
  let room = { chatSeq: 1, lastMsgId: 4, lastReadMsgId: 4, unreadCount: 0 };
  room = roomAfterChat(room, m(5, { createdAt: 't5' }), false);
  assert.equal(unreadOf(room), 1);
  assert.equal(room.lastMessageAt, 't5');
  room = roomAfterChat(room, m(6), false);
  assert.equal(unreadOf(room), 2);
  room = roomAfterChat(room, m(7), true);
  assert.equal(unreadOf(room), 0, 'sending (or reading) marks the room read up to it');
  room = roomAfterChat(room, m(8), false);
  room = roomAfterRead(room, 8);
  assert.equal(unreadOf(room), 0);
  assert.equal(roomAfterRead(room, 3).lastReadMsgId, 8, 'the marker never moves back');
});

test('a room from the server keeps what only the client knows', () => {
  const merged = mergeRoom({ chatSeq: 1, lastMsgId: 3, lastMessageAt: 't' }, { chatSeq: 1, lastMsgId: 5, chatName: 'x' });
  assert.deepEqual(merged, { chatSeq: 1, lastMsgId: 5, chatName: 'x', lastMessageAt: 't' });
});

test('rooms sort by name, direct rooms apart', () => {
  const rooms = [
    { chatSeq: 1, chatName: 'beta' }, { chatSeq: 2, chatName: 'Alpha' },
    { chatSeq: 3, chatName: 'a, b', isDirected: true },
  ];
  const { channels, direct } = sortRooms(rooms, (r) => r.chatName);
  assert.deepEqual(channels.map((r) => r.chatSeq), [2, 1]);
  assert.deepEqual(direct.map((r) => r.chatSeq), [3]);
});

test('messages merge by msgId, in order, without duplicates', () => {
  const merged = mergeMessages([m(1), m(2), m(4)], [m(3), m(2, { content: 'new' }), m(5)]);
  assert.deepEqual(merged.map((x) => x.msgId), [1, 2, 3, 4, 5]);
  assert.equal(merged[1].content, 'new');
});

test('a newest page that leaves a gap replaces what is held', () => {
  assert.deepEqual(withNewestPage([m(1), m(2)], [m(2), m(3)]).map((x) => x.msgId), [1, 2, 3]);
  assert.deepEqual(withNewestPage([m(1), m(2)], [m(3), m(4)]).map((x) => x.msgId), [1, 2, 3, 4]);
  assert.deepEqual(withNewestPage([m(1), m(2)], [m(9), m(10)]).map((x) => x.msgId), [9, 10]);
  assert.deepEqual(withNewestPage([], [m(1)]).map((x) => x.msgId), [1]);
  assert.deepEqual(withNewestPage([m(1)], []).map((x) => x.msgId), [1]);
});

test('older history exists until message 1 or the start is reached', () => {
  assert.equal(hasOlder([m(5)], false), true);
  assert.equal(hasOlder([m(1), m(2)], false), false);
  assert.equal(hasOlder([m(5)], true), false);
  assert.equal(hasOlder([], false), true);
});

test('resume lists the newest message held per room the user is in', () => {
  const held = new Map([[4, 7], [1, 120], [9, 3]]);
  assert.equal(resumeParam(held, (room) => room !== 9), '1:120,4:7');
  assert.equal(resumeParam(new Map(), () => true), '');
  assert.equal(resumeParam(new Map([[2, 0]]), () => true), '2:0');
  assert.equal(resumeParam(new Map([[3, { msgId: 12, seq: 20 }]]), () => true), '3:12:20');
});

test('unread mentions follow new messages and reading', () => {
  const room = { lastMsgId: 4, lastReadMsgId: 4, unreadCount: 0, unreadMentions: 0 };
  const mention = { msgId: 5, senderId: 2, mentions: [1] };
  const after = roomAfterChat(room, mention, false, 1);
  assert.equal(after.unreadMentions, 1);
  assert.equal(roomAfterChat(after, { msgId: 6, senderId: 2, mentionsRoom: true }, false, 1).unreadMentions, 2);
  assert.equal(roomAfterChat(after, { msgId: 6, senderId: 2 }, false, 1).unreadMentions, 1);
  assert.equal(roomAfterChat(room, mention, true, 1).unreadMentions, 0, 'read at once');
  assert.equal(roomAfterRead(after, 4).unreadMentions, 1);
  assert.equal(roomAfterRead(after, 5).unreadMentions, 0);
});

test('change events update the message they name, once', () => {
  const list = [m(1, { seq: 1, reactions: [] }), m(2, { seq: 2, reactions: [] })];
  assert.equal(newestSeq(list), 2);
  const edited = applyChange(list, 'message edited', { msgId: 2, content: 'fixed', editedAt: 't', mentions: [7] });
  assert.equal(edited[1].content, 'fixed');
  assert.equal(edited[1].editedAt, 't');
  assert.ok(mentions(edited[1], 7));
  assert.equal(list[1].content, 'm2', 'the list given is not changed');
  const reacted = applyChange(edited, 'reaction', { msgId: 1, emoji: '👍', userId: 3, added: true });
  assert.deepEqual(applyChange(reacted, 'reaction', { msgId: 1, emoji: '👍', userId: 3, added: true }), reacted);
  assert.deepEqual(reacted[0].reactions, [{ emoji: '👍', userIds: [3], count: 1 }]);
  const unreacted = applyChange(reacted, 'reaction', { msgId: 1, emoji: '👍', userId: 3, added: false });
  assert.deepEqual(unreacted[0].reactions, []);
  const deleted = applyChange(edited, 'message deleted', { msgId: 2, byUserId: 1 });
  assert.equal(deleted[1].deleted, true);
  assert.equal(deleted[1].content, undefined);
  assert.ok(!mentions(deleted[1], 7));
  assert.equal(applyChange(deleted, 'message edited', { msgId: 2, content: 'back' }), deleted);
  assert.equal(applyChange(list, 'reaction', { msgId: 9, emoji: '👍', userId: 3, added: true }), list);
});

test('reconnects back off, capped, with jitter', () => {
  assert.equal(backoffMs(0, () => 0), 250);
  assert.equal(backoffMs(0, () => 1), 500);
  assert.equal(backoffMs(3, () => 1), 4000);
  assert.equal(backoffMs(50, () => 1), 15000);
  assert.ok(backoffMs(50, () => 0) >= 7500);
});
