export * from './spec.js';
export * from './duration.js';
export * from './schedule.js';
export * from './parse.js';
export * from './creation.js';
