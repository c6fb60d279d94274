// idb recognises IndexedDB objects with `instanceof IDBRequest` etc., so the IndexedDB classes must
// be globals in Node; each test still injects its own fresh factory (`freshIndexedDB()`).
import 'fake-indexeddb/auto';
