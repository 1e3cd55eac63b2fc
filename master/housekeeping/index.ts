export { startHousekeeping, type HousekeepingOptions, type HousekeepingHandle } from './housekeeping.js';
