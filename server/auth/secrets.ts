import crypto from 'node:crypto';
import { loadKeyFile } from './tokens';

/**
 * Secrets Cairn must use again (a webhook's signing secret) are sealed with AES-256-GCM under a key in the
 * keys dir: the database alone never holds them in plain text.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static load(keysDir: string): SecretBox {
    return new SecretBox(loadKeyFile(keysDir, 'secrets.key'));
  }

  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key.subarray(0, 32), iv);
    const sealed = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `v1.${iv.toString('base64')}.${cipher.getAuthTag().toString('base64')}.${sealed.toString('base64')}`;
  }

  open(sealed: string): string {
    const [v, iv, tag, data] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || data === undefined) throw new Error('not a sealed secret');
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key.subarray(0, 32), Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8');
  }
}
