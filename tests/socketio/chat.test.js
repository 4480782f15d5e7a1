// daehwa's /socket.io/ end to end with the real socket.io-client, as the original
// design's front ends use it. Each test starts the real binary (target/debug/daehwa,
// built by `cargo test`) on port 0 with a temp data dir. Run: `node --test`.

'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const BINARY = process.env.DAEHWA_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'daehwa');
const PATIENCE_MS = 10_000;

/** Starts daehwa with a config (TOML text); stops it when the test ends. */
async function startServer(t, config = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daehwa-sio-'));
  const configPath = path.join(dir, 'daehwa.toml');
  fs.writeFileSync(configPath, config);
  const child = spawn(BINARY, ['serve', '--bind', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--config', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const addr = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`daehwa did not start: ${seen}`)), PATIENCE_MS);
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const match = /listening.*addr=([0-9.:]+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`daehwa exited (${code}): ${seen}`)));
  });
  child.stderr.resume();
  return `http://${addr}`;
}

async function api(base, method, route, token, body) {
  const response = await fetch(base + route, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function register(base, username) {
  const reply = await api(base, 'POST', '/api/auth/register', null, { username, password: 'correct horse' });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body;
}

async function createRoom(base, user, name) {
  const reply = await api(base, 'POST', '/api/chatrooms/new', user.token, {
    chatType: 'public', chatName: name, password: null, isDirected: false,
  });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body.chatSeq;
}

async function join(base, user, room) {
  const reply = await api(base, 'PUT', `/api/chatrooms/join/${room}`, user.token, { chatSeq: room });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
}

/** Events of one name, as they come, with a wait for the next. */
function inbox(source, name) {
  const events = [];
  let waiter = null;
  const push = (data) => {
    events.push(data);
    if (waiter) waiter();
  };
  if (typeof source.on === 'function' && !(source instanceof WebSocket)) {
    source.on(name, push);
  } else {
    source.on('message', (text) => {
      const frame = JSON.parse(text);
      if (frame.event === name) push(frame.data);
    });
  }
  return {
    events,
    /** Resolves with the first `n` events (fails after the patience). */
    async take(n) {
      const deadline = Date.now() + PATIENCE_MS;
      while (events.length < n) {
        assert.ok(Date.now() < deadline, `expected ${n} ${name} events, got ${events.length}`);
        await new Promise((resolve) => {
          waiter = resolve;
          setTimeout(resolve, 100);
        });
      }
      return events.slice(0, n);
    },
  };
}

function connectSocketIo(t, base, options) {
  const socket = io(base, { reconnectionDelay: 100, reconnectionDelayMax: 200, ...options });
  t.after(() => socket.close());
  return socket;
}

function once(emitter, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} in time`)), PATIENCE_MS);
    emitter.once(name, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function connectWs(t, base, token) {
  const ws = new WebSocket(`${base.replace('http:', 'ws:')}/ws?token=${token}`);
  t.after(() => ws.close());
  const rooms = inbox(ws, 'rooms');
  await once(ws, 'open');
  await rooms.take(1);
  return ws;
}

test('a token in auth connects and the rooms come first', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const room = await createRoom(base, alice, 'general');
  const socket = connectSocketIo(t, base, { auth: { token: alice.token } });
  const [rooms] = await once(socket, 'rooms').then((r) => [r]);
  assert.equal(rooms.length, 1);
  assert.equal(rooms[0].chatSeq, room);
  assert.equal(rooms[0].chatName, 'general');
});

test('the token query parameter works too', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const socket = connectSocketIo(t, base, { query: { token: alice.token } });
  assert.deepEqual(await once(socket, 'rooms'), []);
});

test('an Authorization header works too, on both transports (extraHeaders)', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  for (const transports of [['websocket'], ['polling']]) {
    const socket = connectSocketIo(t, base, {
      transports,
      extraHeaders: { authorization: `Bearer ${alice.token}` },
    });
    assert.deepEqual(await once(socket, 'rooms'), []);
  }
});

test('without a token the connection is refused with {error, message}', async (t) => {
  const base = await startServer(t);
  for (const auth of [{}, { token: 'not a token' }]) {
    const socket = connectSocketIo(t, base, { auth, reconnection: false });
    const error = await once(socket, 'connect_error');
    assert.equal(error.data.error, 'unauthorized');
    assert.ok(error.data.message.length > 0);
    assert.equal(error.message, error.data.message);
  }
});

test('new room and join room arrive after HTTP actions', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const bob = await register(base, 'bob');
  const socket = connectSocketIo(t, base, { auth: { token: alice.token } });
  const newRooms = inbox(socket, 'new room');
  const joins = inbox(socket, 'join room');
  await once(socket, 'rooms');
  const room = await createRoom(base, alice, 'general');
  const [created] = await newRooms.take(1);
  assert.equal(created.chatSeq, room);
  assert.equal(created.chatType, 'public');
  await join(base, bob, room);
  const [joined] = await joins.take(1);
  assert.equal(joined.chatSeq, room);
  assert.equal(joined.userId, bob.userId);
  assert.equal(joined.room.memberCount, 2);
});

test('chat both ways with /ws clients; a user on both transports gets everything on both', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const bob = await register(base, 'bob');
  const room = await createRoom(base, alice, 'general');
  await join(base, bob, room);
  const aliceSio = connectSocketIo(t, base, { auth: { token: alice.token } });
  const aliceSioChats = inbox(aliceSio, 'chat');
  await once(aliceSio, 'rooms');
  const aliceWs = await connectWs(t, base, alice.token);
  const aliceWsChats = inbox(aliceWs, 'chat');
  const bobWs = await connectWs(t, base, bob.token);
  const bobChats = inbox(bobWs, 'chat');

  aliceSio.emit('chat', { chatSeq: room, content: 'from socket.io', clientMsgId: 'a-1' });
  bobWs.send(JSON.stringify({ event: 'chat', data: { chatSeq: room, content: 'from /ws' } }));
  for (const box of [aliceSioChats, aliceWsChats, bobChats]) {
    const chats = await box.take(2);
    assert.deepEqual(chats.map((m) => m.content).sort(), ['from /ws', 'from socket.io']);
    assert.deepEqual(chats.map((m) => m.msgId).sort(), [1, 2]);
    const mine = chats.find((m) => m.content === 'from socket.io');
    assert.equal(mine.senderName, 'alice');
    assert.equal(mine.clientMsgId, 'a-1');
  }
});

test('chat with an acknowledgement callback is acknowledged with the stored message', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const room = await createRoom(base, alice, 'general');
  const socket = connectSocketIo(t, base, { auth: { token: alice.token } });
  await once(socket, 'rooms');
  const stored = await socket.timeout(PATIENCE_MS).emitWithAck('chat', { chatSeq: room, content: 'acked', clientMsgId: 'k-1' });
  assert.equal(stored.msgId, 1);
  assert.equal(stored.content, 'acked');
  assert.equal(stored.clientMsgId, 'k-1');
  // A resend is acknowledged with the original; a refusal with the error.
  const again = await socket.timeout(PATIENCE_MS).emitWithAck('chat', { chatSeq: room, content: 'acked', clientMsgId: 'k-1' });
  assert.deepEqual(again, stored);
  const refused = await socket.timeout(PATIENCE_MS).emitWithAck('chat', { chatSeq: 4242, content: 'nowhere' });
  assert.equal(refused.error, 'room_not_found');
  // Without a callback a refusal is an `error` event, as on /ws.
  const errors = inbox(socket, 'error');
  socket.emit('chat', { chatSeq: room, content: '' });
  const [error] = await errors.take(1);
  assert.equal(error.error, 'empty_message');
});

test('long-polling alone works', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const room = await createRoom(base, alice, 'general');
  const socket = connectSocketIo(t, base, { auth: { token: alice.token }, transports: ['polling'] });
  const chats = inbox(socket, 'chat');
  await once(socket, 'rooms');
  const stored = await socket.timeout(PATIENCE_MS).emitWithAck('chat', { chatSeq: room, content: 'by polling' });
  assert.equal(stored.msgId, 1);
  const [chat] = await chats.take(1);
  assert.equal(chat.content, 'by polling');
  assert.equal(socket.io.engine.transport.name, 'polling');
});

test('after a network drop the client reconnects and resumes: nothing lost, nothing doubled', async (t) => {
  const base = await startServer(t, '[limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n');
  const alice = await register(base, 'alice');
  const bob = await register(base, 'bob');
  const room = await createRoom(base, bob, 'general');
  await join(base, alice, room);

  // Alice's network: a proxy whose connections the test can cut.
  const target = new URL(base);
  const links = new Set();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    links.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const forget = () => { client.destroy(); upstream.destroy(); links.delete(client); links.delete(upstream); };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.after(() => proxy.close());
  const viaProxy = `http://127.0.0.1:${proxy.address().port}`;

  const seen = [];
  // `auth` as a function is read again on every reconnect: it resumes from what
  // this client has.
  const socket = connectSocketIo(t, viaProxy, {
    auth: (cb) => cb({ token: alice.token, resume: seen.length ? `${room}:${seen[seen.length - 1]}` : '' }),
  });
  socket.on('chat', (m) => seen.push(m.msgId));
  await once(socket, 'rooms');
  const say = async (n) => {
    for (let i = 0; i < n; i++) {
      const reply = await api(base, 'POST', `/api/chatrooms/${room}/messages`, bob.token, { content: `m${i}` });
      assert.equal(reply.status, 201);
    }
  };
  await say(5);
  while (seen.length < 5) await new Promise((resolve) => setTimeout(resolve, 20));

  const reconnected = once(socket, 'connect');
  for (const link of links) link.destroy();
  await say(10); // while alice is cut off (or reconnecting)
  await reconnected;
  await say(5); // after she is back
  const deadline = Date.now() + PATIENCE_MS;
  while (seen.length < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i + 1));
});

test("a sender's 1 000 messages arrive in order", async (t) => {
  const base = await startServer(t, '[limits]\nmessages_per_second = 100000.0\nmessage_burst = 100000\n');
  const alice = await register(base, 'alice');
  const bob = await register(base, 'bob');
  const room = await createRoom(base, alice, 'general');
  await join(base, bob, room);
  const sender = connectSocketIo(t, base, { auth: { token: alice.token } });
  const receiver = connectSocketIo(t, base, { auth: { token: bob.token }, transports: ['polling'] });
  const received = inbox(receiver, 'chat');
  await Promise.all([once(sender, 'rooms'), once(receiver, 'rooms')]);
  for (let i = 0; i < 1000; i++) {
    sender.emit('chat', { chatSeq: room, content: `n${i}` });
  }
  const chats = await received.take(1000);
  assert.deepEqual(chats.map((m) => m.content), Array.from({ length: 1000 }, (_, i) => `n${i}`));
  assert.deepEqual(chats.map((m) => m.msgId), Array.from({ length: 1000 }, (_, i) => i + 1));
});

test('typing, edits, reactions and deletes reach socket.io clients; a typing frame is acknowledged', async (t) => {
  const base = await startServer(t);
  const alice = await register(base, 'alice');
  const bob = await register(base, 'bob');
  const room = await createRoom(base, alice, 'general');
  await join(base, bob, room);
  const aliceSocket = connectSocketIo(t, base, { auth: { token: alice.token } });
  const bobSocket = connectSocketIo(t, base, { auth: { token: bob.token } });
  await Promise.all([once(aliceSocket, 'rooms'), once(bobSocket, 'rooms')]);
  const typing = inbox(aliceSocket, 'typing');
  const ack = await bobSocket.timeout(PATIENCE_MS).emitWithAck('typing', { chatSeq: room });
  assert.deepEqual(ack, {});
  const [event] = await typing.take(1);
  assert.deepEqual(event, { chatSeq: room, userId: bob.userId, username: 'bob' });
  // Too soon again: refused in the acknowledgement.
  const refused = await bobSocket.timeout(PATIENCE_MS).emitWithAck('typing', { chatSeq: room });
  assert.equal(refused.error, 'rate_limited');

  const sent = await api(base, 'POST', `/api/chatrooms/${room}/messages`, alice.token, { content: 'helo' });
  const edits = inbox(bobSocket, 'message edited');
  const reactions = inbox(bobSocket, 'reaction');
  const deletes = inbox(bobSocket, 'message deleted');
  const msg = sent.body.msgId;
  assert.equal((await api(base, 'PATCH', `/api/chatrooms/${room}/messages/${msg}`, alice.token, { content: 'hello' })).status, 200);
  assert.equal((await api(base, 'PUT', `/api/chatrooms/${room}/messages/${msg}/reactions/%F0%9F%91%8D`, alice.token)).status, 204);
  assert.equal((await api(base, 'DELETE', `/api/chatrooms/${room}/messages/${msg}`, alice.token)).status, 204);
  const [edit] = await edits.take(1);
  assert.equal(edit.content, 'hello');
  assert.equal(edit.seq, sent.body.seq + 1);
  const [reaction] = await reactions.take(1);
  assert.deepEqual({ emoji: reaction.emoji, added: reaction.added, seq: reaction.seq }, { emoji: '👍', added: true, seq: sent.body.seq + 2 });
  const [deleted] = await deletes.take(1);
  assert.deepEqual(deleted, { chatSeq: room, seq: sent.body.seq + 3, msgId: msg, byUserId: alice.userId });
});
