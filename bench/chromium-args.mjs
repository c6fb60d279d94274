// Chromium's flags on this machine's closed network (root, no GPU, no Google services): the browser
// suite and the bench launch Debian's Chromium with these.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
