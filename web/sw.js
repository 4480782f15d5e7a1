// The service worker: keeps the app shell (these files) so that the client opens
// without the network. Network first: every load asks the server (a 304 when
// nothing changed), so a new version is used at once; the cache answers only when
// the server cannot be reached. The API and the WebSocket are never cached here
// (the app keeps messages in IndexedDB itself).

const CACHE = 'daehwa-shell-v1';
const SHELL = [
  '/',
  '/index.html',
  '/app.css',
  '/manifest.webmanifest',
  '/icon.svg',
  '/icon-192.png',
  '/icon-512.png',
  '/js/main.js',
  '/js/app.js',
  '/js/api.js',
  '/js/socket.js',
  '/js/db.js',
  '/js/dom.js',
  '/js/state.js',
  '/js/outbox.js',
  '/js/format.js',
  '/js/notify.js',
  '/js/views/login.js',
  '/js/views/sidebar.js',
  '/js/views/room.js',
  '/js/views/members.js',
  '/js/views/dialogs.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: 'no-cache' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && SHELL.includes(url.pathname);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  const navigation = request.mode === 'navigate' && url.origin === self.location.origin
    && (url.pathname === '/' || url.pathname === '/index.html');
  if (!navigation && !isShell(url)) return;
  const key = navigation ? '/' : url.pathname;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((cached) => cached ?? Response.error())),
  );
});
