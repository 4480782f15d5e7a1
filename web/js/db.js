// IndexedDB: what the client keeps for offline reading, per user: the rooms, the
// last page of each opened room, and the outbox. One object store of keyed values.

const NAME = 'daehwa';
const STORE = 'kv';
/** Messages kept per room: the page a reload shows before the network answers. */
export const PAGE_SIZE = 50;

let opening = null;

function open() {
  if (!('indexedDB' in globalThis)) return Promise.resolve(null);
  opening ??= new Promise((resolve) => {
    const request = indexedDB.open(NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    // Private windows may refuse storage: the client works without it.
    request.onerror = () => resolve(null);
    request.onblocked = () => resolve(null);
  });
  return opening;
}

async function run(mode, fn) {
  const db = await open();
  if (!db) return undefined;
  return new Promise((resolve) => {
    const tx = db.transaction(STORE, mode);
    const request = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => resolve(undefined);
    tx.onabort = () => resolve(undefined);
  });
}

export const get = (key) => run('readonly', (s) => s.get(key));
export const put = (key, value) => run('readwrite', (s) => s.put(value, key));
export const del = (key) => run('readwrite', (s) => s.delete(key));

/** Forgets everything of every user (log out). */
export const clear = () => run('readwrite', (s) => s.clear());

/** Keys for one user's records. */
export const keys = {
  rooms: (userId) => `rooms:${userId}`,
  page: (userId, roomId) => `page:${userId}:${roomId}`,
  outbox: (userId) => `outbox:${userId}`,
};
