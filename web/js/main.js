// Starts the client: the service worker (offline app shell), the App, and the views
// for the signed-out and signed-in states.

import { App } from './app.js';
import { html, refs, icon } from './dom.js';
import { loginView } from './views/login.js';
import { sidebarView } from './views/sidebar.js';
import { roomView } from './views/room.js';
import { membersView } from './views/members.js';

/** How long a toast stays. */
const TOAST_MS = 6000;
/** Wide enough for the members panel beside the chat without covering it. */
const WIDE = '(min-width: 1100px)';

const app = new App();
const root = document.getElementById('app');
let teardown = null;

function showLogin() {
  root.replaceChildren(loginView(app));
}

function showShell() {
  const controller = new AbortController();
  const { signal } = controller;
  const shell = html`
    <div class="shell" data-view="rooms">
      <aside class="sidebar" data-ref="sidebar"></aside>
      <main class="main" data-ref="main"></main>
      <div class="members-slot" data-ref="members"></div>
    </div>`;
  const r = refs(shell);
  const toggles = [];
  let membersOpen = window.matchMedia(WIDE).matches;
  const layout = {
    membersOpen: () => membersOpen,
    openMembers() {
      membersOpen = true;
      update();
      shell.querySelector('#members-panel')?.focus();
    },
    closeMembers() {
      membersOpen = false;
      update();
      shell.querySelector('.members-toggle')?.focus();
    },
    onMembersToggle: (fn) => toggles.push(fn),
  };
  function update() {
    shell.dataset.view = app.state.current === null ? 'rooms' : 'room';
    shell.dataset.members = membersOpen && app.state.current !== null ? 'open' : 'closed';
    r.members.hidden = shell.dataset.members !== 'open';
    for (const fn of toggles) fn();
  }
  r.sidebar.append(sidebarView(app, signal));
  const room = roomView(app, layout, signal);
  r.main.append(room.root);
  r.members.append(membersView(app, layout, signal));
  app.addEventListener('room', update, { signal });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && membersOpen && !window.matchMedia(WIDE).matches && !document.querySelector('dialog[open], .menu')) {
      layout.closeMembers();
    }
  }, { signal });
  update();
  root.replaceChildren(shell);
  return () => controller.abort();
}

function render() {
  teardown?.();
  teardown = null;
  if (app.state.me) teardown = showShell();
  else showLogin();
}

const toasts = html`<div class="toasts" aria-live="polite"></div>`;
document.body.append(toasts);
app.addEventListener('toast', (e) => {
  const { text, action } = e.detail;
  const toast = html`
    <div class="toast" role="alert">
      <span>${text}</span>
      ${action ? html`<button type="button" class="small primary" data-ref="action">${action.label}</button>` : null}
      <button type="button" class="icon-button" aria-label="Dismiss" data-ref="dismiss">${icon('close')}</button>
    </div>`;
  const r = refs(toast);
  const remove = () => toast.remove();
  r.dismiss.addEventListener('click', remove);
  r.action?.addEventListener('click', () => {
    remove();
    action.run();
  });
  toasts.append(toast);
  setTimeout(remove, action ? TOAST_MS * 2 : TOAST_MS);
});

app.addEventListener('session', render);
window.addEventListener('popstate', () => app.state.me && app.openFromHash());

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch(() => {
    // Without a service worker the client works online; only offline reloads need it.
  });
}

app.start();
