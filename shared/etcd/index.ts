export * from './client.js';
export * from './errors.js';
export * from './txn.js';
export * from './prefix-cache.js';
export * from './watch-stream.js';
