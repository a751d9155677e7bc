import { CrateError } from '@crate/crypto-core';
import * as api from './api.js';
import { findBinding } from './config/binding.js';
import type { GlobalFlags, Resolution } from './config/resolve.js';
import { resolveSettings } from './config/resolve.js';
import { loadUserConfig } from './config/user-config.js';
import { ApiClient, DEFAULT_TIMEOUT_MS } from './http/client.js';
import { Output, type OutputStreams } from './output.js';
import { KnownKeys, type OrgKeys } from './pinning/known-keys.js';

export interface CommandIo extends OutputStreams {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

export interface ContextInput {
  flags: GlobalFlags & { json?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  io: CommandIo;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a service token's scope from the whoami answer, when the server says it. */
function tokenScope(token: unknown): { project?: string; environment?: string } {
  if (!isRecord(token)) return {};
  const scope: { project?: string; environment?: string } = {};
  if (typeof token.project === 'string') scope.project = token.project;
  if (typeof token.environment === 'string') scope.environment = token.environment;
  return scope;
}

/** The org's default project: the one marked default, else the only one. */
export function defaultProject(answer: unknown): string | undefined {
  const list = Array.isArray(answer) ? answer : isRecord(answer) ? answer.projects : undefined;
  if (!Array.isArray(list)) return undefined;
  const projects = list.filter(isRecord);
  const marked = projects.find((project) => project.default === true || project.isDefault === true);
  const chosen = marked ?? (projects.length === 1 ? projects[0] : undefined);
  return typeof chosen?.slug === 'string' ? chosen.slug : undefined;
}

/**
 * Everything a command needs, resolved lazily and at most once: settings, the HTTP client,
 * the org/project/environment scope, and the pinned org keys.
 */
export class CommandContext {
  readonly flags: GlobalFlags & { json: boolean };
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly io: CommandIo;
  readonly out: Output;
  readonly knownKeys: KnownKeys;
  #settings: Promise<Resolution> | undefined;
  #whoami: Promise<api.Whoami> | undefined;
  #client: ApiClient | undefined;
  #scope: Promise<api.Scope> | undefined;
  #orgKeys: Promise<OrgKeys> | undefined;

  constructor(input: ContextInput) {
    this.flags = { ...input.flags, json: input.flags.json === true };
    this.env = input.env;
    this.cwd = input.cwd;
    this.io = input.io;
    this.out = new Output(input.io, { json: this.flags.json, env: input.env });
    this.knownKeys = new KnownKeys(input.env);
  }

  settings(): Promise<Resolution> {
    this.#settings ??= (async () => {
      const [binding, userConfig] = await Promise.all([
        findBinding(this.cwd),
        loadUserConfig(this.env),
      ]);
      return resolveSettings({ flags: this.flags, env: this.env, binding, userConfig });
    })();
    return this.#settings;
  }

  timeoutMs(): number {
    const seconds = Number(this.env.CRATE_TIMEOUT);
    return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_TIMEOUT_MS;
  }

  /** The API client for the resolved server, with the resolved token. */
  async client(): Promise<ApiClient> {
    if (this.#client) return this.#client;
    const settings = await this.settings();
    if (!settings.server) {
      throw new CrateError('ERR_CONFIG', 'no server configured');
    }
    if (!settings.token) {
      throw new CrateError('ERR_UNAUTHENTICATED', `not logged in to ${settings.server.value}`);
    }
    this.#client = new ApiClient({
      server: settings.server.value,
      token: settings.token.value,
      insecureHttp: settings.insecureHttp,
      timeoutMs: this.timeoutMs(),
    });
    return this.#client;
  }

  async whoami(): Promise<api.Whoami> {
    this.#whoami ??= this.client().then((client) => api.whoami(client));
    return this.#whoami;
  }

  /** The org: resolved, or else the token's only org. */
  async orgId(): Promise<string> {
    const settings = await this.settings();
    if (settings.org) return settings.org.value;
    const me = await this.whoami();
    if (me.orgs.length === 1 && me.orgs[0]) return me.orgs[0].id;
    if (me.orgs.length === 0) throw new CrateError('ERR_NOT_FOUND', 'this token belongs to no org');
    throw new CrateError(
      'ERR_USAGE',
      `this token reaches ${me.orgs.length} orgs (${me.orgs.map((org) => org.id).join(', ')}); ` +
        'choose one with --org, CRATE_ORG, crate.json or `crate session org set`',
    );
  }

  /** org + project + environment, inferring what CI leaves out from the token. */
  scope(): Promise<api.Scope> {
    this.#scope ??= (async () => {
      const settings = await this.settings();
      const org = await this.orgId();
      let project = settings.project?.value;
      let environment = settings.environment.value;
      if (!project || settings.environment.source === 'default') {
        const fromToken = settings.project ? {} : tokenScope((await this.whoami()).token);
        if (!project && fromToken.project) project = fromToken.project;
        if (settings.environment.source === 'default' && fromToken.environment) {
          environment = fromToken.environment;
        }
      }
      if (!project) {
        project = defaultProject(await api.listProjects(await this.client(), org));
      }
      if (!project) {
        throw new CrateError(
          'ERR_USAGE',
          `no project chosen and org ${org} has no single default project; ` +
            'pass --project, set CRATE_PROJECT, or run `crate init`',
        );
      }
      return { org, project, environment };
    })();
    return this.#scope;
  }

  /** Fetches the org keys again (after ERR_SEALING_KEY_STALE) and checks them against the pin. */
  refreshOrgKeys(): Promise<OrgKeys> {
    this.#orgKeys = undefined;
    return this.orgKeys();
  }

  /** The org's public keys, checked against (or pinned as) the known keys. */
  orgKeys(): Promise<OrgKeys> {
    this.#orgKeys ??= (async () => {
      const client = await this.client();
      const org = await this.orgId();
      const outcome = await this.knownKeys.check(
        client.server,
        org,
        await api.publicKey(client, org),
      );
      switch (outcome.kind) {
        case 'first-use':
          this.out.info(
            `Pinned the keys of org ${org} on ${client.server} (first use):\n` +
              `  sealing ${outcome.keys.sealing.fingerprint}\n  signing ${outcome.keys.signing.fingerprint}\n` +
              `Later changes are refused unless vouched for by these keys (${this.knownKeys.path}).`,
          );
          break;
        case 'rotated-vouched':
          // One line: the change is signed by the pinned key, so there is nothing to decide.
          this.out.info(
            `Note: the keys of org ${org} were rotated (${outcome.rotations === 1 ? 'vouched for by the pinned key' : `${outcome.rotations} rotations, each vouched for by the key before`}); now pinned: sealing ${outcome.keys.sealing.fingerprint}, signing ${outcome.keys.signing.fingerprint}.`,
          );
          break;
        case 'match':
          break;
        default: {
          const unhandled: never = outcome;
          return unhandled;
        }
      }
      return outcome.keys;
    })();
    return this.#orgKeys;
  }
}
