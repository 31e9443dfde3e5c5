// Modal questions in the page's one confirm dialog (a native <dialog>: focus stays
// inside, Escape cancels, focus returns to what opened it).
import { byId } from './dom.js';

/**
 * Ask `title` (with `body`: a string or nodes) and resolve true when the user picks
 * `confirm` (the button's label); `cancel: null` shows only that one button.
 */
export function ask({ title, body, confirm = 'OK', cancel = 'Cancel', danger = false }) {
  const dialog = byId('confirm-dialog');
  const ok = byId('confirm-ok');
  const no = byId('confirm-cancel');
  const opener = document.activeElement;
  byId('confirm-title').textContent = title;
  const text = byId('confirm-text');
  if (typeof body === 'string') text.replaceChildren(Object.assign(document.createElement('p'), { textContent: body }));
  else text.replaceChildren(...(Array.isArray(body) ? body : [body]).filter(Boolean));
  ok.textContent = confirm;
  ok.className = danger ? 'danger' : 'primary';
  no.textContent = cancel || '';
  no.hidden = !cancel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener?.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
    (cancel ? no : ok).focus();
  });
}
