import { createDriver } from '/pages/t-core.js';

const query = new URLSearchParams(location.search);
// `locks=0`: a browser without Web Locks (the IndexedDB lease path). The library looks for
// navigator.locks when it flushes, so removing it here, before any flush, is enough.
if (query.get('locks') === '0') delete Navigator.prototype.locks;
window.T = createDriver(query.get('api'));
