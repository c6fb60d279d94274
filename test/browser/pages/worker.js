// A dedicated module worker that runs the buffer; the page drives it with { id, cmd, args } messages.
import { createDriver } from '/pages/t-core.js';

const api = new URL(self.location.href).searchParams.get('api');
const T = createDriver(api);
self.onmessage = async (event) => {
  const { id, cmd, args = [] } = event.data;
  try {
    self.postMessage({ id, ok: true, value: await T[cmd](...args) });
  } catch (error) {
    self.postMessage({ id, ok: false, error: String(error?.message) });
  }
};
