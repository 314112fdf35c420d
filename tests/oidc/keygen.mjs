// Writes a JWKS of fresh private signing keys for provider.mjs: RSA 2048 then EC P-256, each
// with a new random kid, so a rotation always publishes kids never seen before.
// node keygen.mjs [FILE]   (stdout without FILE)
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const keys = [
  jwk('rsa', { modulusLength: 2048 }, 'RS256'),
  jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
];
const out = `${JSON.stringify({ keys }, null, 2)}\n`;
if (process.argv[2]) writeFileSync(process.argv[2], out, { mode: 0o600 });
else process.stdout.write(out);
