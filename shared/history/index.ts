export * from './records.js';
export * from './read.js';
