export { startHousekeeping, type HousekeepingOptions, type HousekeepingHandle, type HousekeepingStats, type HousekeepingHealth } from './housekeeping.js';
