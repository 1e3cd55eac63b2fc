export { startHousekeeping, type HousekeepingOptions, type HousekeepingHandle, type HousekeepingStats } from './housekeeping.js';
