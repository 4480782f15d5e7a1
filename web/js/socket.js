// The WebSocket connection: connects with the token (the one place it goes in a URL)
// and the resume positions, reports its state, and reconnects with backoff after a
// blip, a server restart or coming back online.

import { backoffMs } from './state.js';

/** Close codes of docs/API.md. */
const LOGGED_OUT = 4001;

export class Connection {
  /**
   * `onEvent(name, data)` gets every server event; `onState(state)` gets
   * 'connecting' | 'online' | 'offline'; `onLoggedOut()` when the token was revoked;
   * `resume()` gives the resume parameter at each (re)connect.
   */
  constructor({ token, resume, onEvent, onState, onLoggedOut }) {
    Object.assign(this, { token, resume, onEvent, onState, onLoggedOut });
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.state = 'connecting';
    this.wake = () => this.reconnectNow();
    window.addEventListener('online', this.wake);
  }

  start() {
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.wake);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  open() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setState(this.attempt === 0 ? 'connecting' : this.state);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ token: this.token });
    const resume = this.resume();
    if (resume) params.set('resume', resume);
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/ws?${params}`);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener('message', (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame.event === 'rooms') {
        this.attempt = 0;
        this.setState('online');
      }
      this.onEvent(frame.event, frame.data);
    });
    socket.addEventListener('close', (e) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (e.code === LOGGED_OUT) {
        this.stop();
        this.onLoggedOut();
        return;
      }
      this.retry();
    });
  }

  retry() {
    if (this.stopped) return;
    this.setState('offline');
    const delay = backoffMs(this.attempt++);
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** Back online, or the user asked: try at once. */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.open();
  }

  /** Sends a frame; false when not connected (the caller keeps it for later). */
  send(event, data) {
    if (this.state !== 'online' || !this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ event, data }));
    return true;
  }
}
