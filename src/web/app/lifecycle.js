// Presence that tells the truth: a page the user navigated away from may sit in the
// browser's back/forward cache with its socket open and the user "online". The socket
// closes when the page is hidden for good (pagehide) and opens again if the page comes
// back (pageshow from the cache); what was missed meanwhile is caught up by seq.

/** Close `client`'s socket on pagehide and reopen it on pageshow while `signedIn()`. */
export function followPageLifecycle(client, signedIn) {
  window.addEventListener('pagehide', () => {
    if (signedIn()) client.disconnect();
  });
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && signedIn()) client.connect();
  });
}
