export * from './encoder.js';
export * from './parser.js';
