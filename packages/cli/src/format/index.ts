// Output formats for `crate secrets fetch` and the dotenv reader for `crate secrets import`.
export type { SecretEntry } from './_entries.js';
export { isBareDotenvValue } from './dotenv.js';
export type { ParsedEntry } from './dotenv-parse.js';
export { parseDotenv } from './dotenv-parse.js';
export { isValidEnvName, MAX_ENV_NAME_LENGTH } from './env-name.js';
export type { SecretsFormat } from './format.js';
export { formatSecrets, SECRETS_FORMATS } from './format.js';
export { shellQuote } from './shell.js';
