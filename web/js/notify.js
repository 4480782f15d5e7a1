// Desktop notifications while the tab is hidden, with a per-room mute kept in
// localStorage.

const MUTED_KEY = 'daehwa.mutedRooms';

export function supported() {
  return 'Notification' in globalThis;
}

export function permission() {
  return supported() ? Notification.permission : 'denied';
}

export async function ask() {
  if (!supported()) return 'denied';
  return Notification.requestPermission();
}

function mutedSet() {
  try {
    return new Set(JSON.parse(localStorage.getItem(MUTED_KEY) ?? '[]'));
  } catch {
    return new Set();
  }
}

export function isMuted(roomId) {
  return mutedSet().has(roomId);
}

export function setMuted(roomId, muted) {
  const set = mutedSet();
  if (muted) set.add(roomId);
  else set.delete(roomId);
  localStorage.setItem(MUTED_KEY, JSON.stringify([...set]));
}

/** Shows a notification for a message when the tab is hidden and the room is not
 * muted; one that mentions the user shows even from a muted room. */
export function notifyMessage({ title, body, roomId, mention = false, onClick }) {
  if (!document.hidden || (isMuted(roomId) && !mention) || permission() !== 'granted') return;
  try {
    const n = new Notification(title, { body, tag: `room-${roomId}`, icon: '/icon-192.png' });
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
  } catch {
    // Some platforms only allow notifications from a service worker; skip there.
  }
}
