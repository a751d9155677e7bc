/** Kept in step with package.json; inlined so the bundle needs no file read at start-up. */
export const CLI_VERSION = '0.1.0';
