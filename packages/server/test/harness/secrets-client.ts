import {
  decodeBundlePayload,
  generateEphemeralKeyPair,
  importSealingPublicKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  sealValue,
} from '@crate/crypto-core';
import { api } from './server.js';

/**
 * What the `crate` CLI does, in the test process: seal values to the org's public key, and
 * read them back through an ephemeral key and a signed bundle. So a test sees exactly the
 * values a CLI user would see.
 */
export class SecretsClient {
  readonly #url: string;
  readonly #token: string;
  readonly #org: string;

  constructor(url: string, token: string, org: string) {
    this.#url = url;
    this.#token = token;
    this.#org = org;
  }

  async #keys() {
    const answer = await api(this.#url, 'GET', `/v1/organization/${this.#org}/secrets/public-key`, {
      token: this.#token,
    });
    if (answer.status !== 200) throw new Error(`public-key: ${JSON.stringify(answer.body)}`);
    return answer.body as {
      keyId: string;
      spki: string;
      signingKey: { keyId: string; spki: string };
    };
  }

  /** Writes values in batches of at most 500 (the API's limit). */
  async put(
    project: string,
    environment: string,
    values: ReadonlyMap<string, string>,
  ): Promise<void> {
    const keys = await this.#keys();
    const publicKey = importSealingPublicKey(Buffer.from(keys.spki, 'base64'));
    const entries = [...values];
    for (let i = 0; i < entries.length; i += 500) {
      const secrets = entries.slice(i, i + 500).map(([name, value]) => ({
        name,
        seal: sealValue(publicKey, keys.keyId, Buffer.from(value, 'utf8'), {
          orgId: this.#org,
          project,
          environment,
          name,
        }),
      }));
      const written = await api(this.#url, 'PUT', `/v1/organization/${this.#org}/secrets`, {
        token: this.#token,
        body: { sealed: true, project, environment, secrets },
      });
      if (written.status !== 200) throw new Error(`put: ${JSON.stringify(written.body)}`);
    }
  }

  /** Every current value of an environment, as the CLI would print them. */
  async fetchAll(
    project: string,
    environment: string,
  ): Promise<Map<string, { version: number; value: string }>> {
    const keys = await this.#keys();
    const ephemeral = await generateEphemeralKeyPair(2048);
    const nonce = newBundleNonce();
    const response = await api(
      this.#url,
      'POST',
      `/v1/organization/${this.#org}/secrets/retrieve`,
      {
        token: this.#token,
        body: {
          project,
          environment,
          publicKey: ephemeral.publicKeySpki.toString('base64'),
          nonce,
        },
      },
    );
    if (response.status !== 200) throw new Error(`retrieve: ${JSON.stringify(response.body)}`);
    const payload = openBundle(response.body.bundle, {
      ephemeralPrivateKey: ephemeral.privateKey,
      ephemeralPublicKeySpki: ephemeral.publicKeySpki,
      signingPublicKey: importSigningPublicKey(Buffer.from(keys.signingKey.spki, 'base64')),
      signingKeyId: keys.signingKey.keyId,
      binding: { orgId: this.#org, project, environment, nonce },
    });
    const values = new Map<string, { version: number; value: string }>();
    for (const entry of decodeBundlePayload(payload)) {
      values.set(entry.name, { version: entry.version, value: entry.value.toString('utf8') });
    }
    return values;
  }
}
