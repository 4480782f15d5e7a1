// The sign-in view: log in or register with a username and a password.

import { html, refs } from '../dom.js';

export function loginView(app) {
  const root = html`
    <main class="login">
      <div class="login-card">
        <div class="brand-large">
          <img src="/icon.svg" alt="" width="56" height="56">
          <h1>daehwa <span lang="ko">대화</span></h1>
          <p class="muted">Your team's conversations, on your own server.</p>
        </div>
        <form data-ref="form" novalidate>
          <div class="field">
            <label for="login-username">Username</label>
            <input id="login-username" data-ref="username" name="username" autocomplete="username"
                   autocapitalize="none" spellcheck="false" required maxlength="32">
          </div>
          <div class="field">
            <label for="login-password">Password</label>
            <input id="login-password" data-ref="password" name="password" type="password"
                   autocomplete="current-password" required>
          </div>
          <p class="form-error" role="alert" data-ref="error"></p>
          <div class="login-actions">
            <button type="submit" class="primary" data-ref="login">Log in</button>
            <button type="button" data-ref="register">Register</button>
          </div>
          <p class="hint">New here? Choose a username (letters, digits, <code>_ - .</code>) and a
            password of at least 8 characters, then press Register.</p>
        </form>
      </div>
    </main>`;
  const r = refs(root);

  async function submit(register) {
    r.error.textContent = '';
    const username = r.username.value.trim();
    const password = r.password.value;
    if (!username || !password) {
      r.error.textContent = 'Enter a username and a password.';
      (username ? r.password : r.username).focus();
      return;
    }
    r.login.disabled = r.register.disabled = true;
    try {
      await app.login(username, password, register);
    } catch (e) {
      r.error.textContent = e.message || 'That did not work.';
      r.password.focus();
    } finally {
      r.login.disabled = r.register.disabled = false;
    }
  }

  r.form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit(false);
  });
  r.register.addEventListener('click', () => submit(true));
  queueMicrotask(() => r.username.focus());
  return root;
}
