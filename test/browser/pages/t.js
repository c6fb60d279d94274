import { createDriver } from '/pages/t-core.js';

const api = new URLSearchParams(location.search).get('api');
window.T = createDriver(api);
