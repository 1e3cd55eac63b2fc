export * from './records.js';
export * from './read.js';
export * from './write.js';
