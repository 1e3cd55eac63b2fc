export * from './process-group.js';
export * from './output-tail.js';
