// The outbox: messages written but not yet confirmed by the server. Each has a
// clientMsgId, so a resend after a reconnect is idempotent (the server answers a
// known clientMsgId with the original message). Pure logic; the app keeps it in
// IndexedDB so that messages written offline survive a reload.
// `node --test` covers it (tests/web/outbox.test.js).

/** A fresh clientMsgId: 16 random bytes in hex, within the server's 64 bytes. */
export function newClientMsgId(crypto = globalThis.crypto) {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `c-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Errors after which a resend may succeed: the message stays pending. */
const TRANSIENT = new Set(['rate_limited', 'storage_unavailable', 'internal']);

export class Outbox {
  constructor(entries = []) {
    /** clientMsgId → entry, in the order written. */
    this.entries = new Map(entries.map((e) => [e.clientMsgId, e]));
  }

  /** Adds a message written now; returns its entry. */
  add(chatSeq, content, { clientMsgId = newClientMsgId(), now = new Date(), attachments = [] } = {}) {
    const entry = { clientMsgId, chatSeq, content, createdAt: now.toISOString(), state: 'pending' };
    // Files already uploaded, shown with the pending message and sent by id.
    if (attachments.length) entry.attachments = attachments;
    this.entries.set(clientMsgId, entry);
    return entry;
  }

  /** The server stored it (a `chat` event carrying our clientMsgId): forget it. */
  confirm(clientMsgId) {
    const entry = this.entries.get(clientMsgId);
    this.entries.delete(clientMsgId);
    return entry;
  }

  /** The server refused it. Transient refusals keep it pending for the next send. */
  refuse(clientMsgId, error) {
    const entry = this.entries.get(clientMsgId);
    if (!entry) return undefined;
    if (TRANSIENT.has(error.error)) return entry;
    const failed = { ...entry, state: 'failed', error: error.message || error.error };
    this.entries.set(clientMsgId, failed);
    return failed;
  }

  /** Puts a failed message back in line. */
  retry(clientMsgId) {
    const entry = this.entries.get(clientMsgId);
    if (!entry) return undefined;
    const pending = { ...entry, state: 'pending', error: undefined };
    this.entries.set(clientMsgId, pending);
    return pending;
  }

  discard(clientMsgId) {
    return this.entries.delete(clientMsgId);
  }

  /** What to send on (re)connect, in the order written. */
  due() {
    return [...this.entries.values()].filter((e) => e.state === 'pending');
  }

  /** A room's unconfirmed messages, in the order written. */
  forRoom(chatSeq) {
    return [...this.entries.values()].filter((e) => e.chatSeq === chatSeq);
  }

  /** Drops a room's messages (the user left it or was removed). */
  dropRoom(chatSeq) {
    for (const [id, e] of this.entries) if (e.chatSeq === chatSeq) this.entries.delete(id);
  }

  toJSON() {
    return [...this.entries.values()];
  }
}
