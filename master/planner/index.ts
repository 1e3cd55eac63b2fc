export * from './slots.js';
export * from './catch-up.js';
