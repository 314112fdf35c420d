// A real OpenID Provider (panva's oidc-provider) on loopback for the JWT/OIDC auth method's tests:
// workload tokens with chosen claims minted through the client_credentials grant, and the
// authorization-code flow with PKCE for a person through the dev interactions. tests/compat/oidc.py
// drives it; nothing here is Python-signed, every token comes out of the provider's own signer.
//
// node provider.mjs --port 8000 --jwks keys.json [--client-id iamlease] [--client-secret s]
//     [--redirect-uri URI ...] [--users users.json] [--auth-method client_secret_basic]
//     [--id-token-alg RS256] [--minter-secret s]
// Every option also reads an environment variable (OIDC_PORT, OIDC_JWKS, OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS space-separated, OIDC_USERS, OIDC_AUTH_METHOD,
// OIDC_ID_TOKEN_ALG, OIDC_MINTER_SECRET). Prints `READY http://127.0.0.1:<port>` once listening.
//
// Keys: the JWKS file holds private JWKs; all are published at jwks_uri, and for each algorithm
// the FIRST key of the matching type signs (oidc-provider's keystore keeps file order among equals).
// Rotation is a restart with another file on the same port: the keystore is fixed at start-up.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT },
    jwks: { type: 'string', default: process.env.OIDC_JWKS },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID ?? 'iamlease' },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET ?? 'iamlease-secret' },
    'redirect-uri': { type: 'string', multiple: true, default: (process.env.OIDC_REDIRECT_URIS ?? '').split(/\s+/).filter(Boolean) },
    users: { type: 'string', default: process.env.OIDC_USERS },
    'auth-method': { type: 'string', default: process.env.OIDC_AUTH_METHOD ?? 'client_secret_basic' },
    'id-token-alg': { type: 'string', default: process.env.OIDC_ID_TOKEN_ALG ?? 'RS256' },
    'minter-secret': { type: 'string', default: process.env.OIDC_MINTER_SECRET ?? 'minter-secret' },
  },
});
if (!opt.port || !opt.jwks) {
  console.error('usage: node provider.mjs --port PORT --jwks FILE (or OIDC_PORT, OIDC_JWKS)');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${opt.port}`;
const jwks = JSON.parse(readFileSync(opt.jwks, 'utf8'));
// login name -> claims overriding the defaults below (e.g. {"bob": {"groups": ["dev"]}}).
const users = opt.users ? JSON.parse(readFileSync(opt.users, 'utf8')) : {};

// The resource indicator a mint request names; its suffix picks the signing algorithm.
const MINT = /^urn:iamlease:mint:((?:RS|PS|ES)(?:256|384|512)|EdDSA)$/;
const MINTER_ID = 'minter';

function mintRequest(ctx) {
  // oidc-provider keeps only the grant's own parameters in ctx.oidc.params; the raw form body
  // still has ours. `mint` is JSON: {sub, aud, claims, ttl, typ}.
  const raw = ctx?.oidc?.body?.mint;
  return raw ? JSON.parse(raw) : undefined;
}

const provider = new Provider(issuer, {
  jwks,
  clients: [
    {
      // The person's client. `native` makes loopback redirect URIs match on any port (RFC 8252
      // 7.3), so the server's callback can be registered before the server's port is known.
      client_id: opt['client-id'],
      client_secret: opt['client-secret'],
      application_type: 'native',
      redirect_uris: opt['redirect-uri'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: opt['auth-method'],
      id_token_signed_response_alg: opt['id-token-alg'],
    },
    {
      // The workload-token mint: client_credentials with a JWT access token per request.
      client_id: MINTER_ID,
      client_secret: opt['minter-secret'],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // The code flow only: no implicit or hybrid response types advertised.
  responseTypes: ['code'],
  // The scope claims go into the ID token itself (Vault reads them there), not only /me.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const claims = {
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      name: id.charAt(0).toUpperCase() + id.slice(1),
      preferred_username: id,
      groups: ['users'],
      ...users[id],
    };
    return { accountId: id, claims: async () => claims };
  },
  features: {
    // Any login name with any password; a plain HTML form that requests and a browser can submit.
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      async getResourceServerInfo(ctx, resource, client) {
        const m = MINT.exec(resource);
        if (!m || client.clientId !== MINTER_ID) throw new errors.InvalidTarget();
        return {
          scope: '',
          audience: resource, // replaced by the requested aud in the customizer
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: m[1] } },
        };
      },
    },
  },
  formats: {
    customizers: {
      // The provider assembled its access-token payload; a mint request replaces it with the
      // token the test asked for, which the provider then signs with its own key (kid in header).
      async jwt(ctx, token, jwt) {
        const req = token.clientId === MINTER_ID ? mintRequest(ctx) : undefined;
        if (!req) return;
        const now = Math.floor(Date.now() / 1000);
        const ttl = req.ttl ?? 300;
        const exp = now + ttl;
        // An already-expired token still has iat before exp.
        const iat = ttl > 0 ? now : exp - 300;
        jwt.payload = {
          jti: jwt.payload.jti, iss: issuer, sub: req.sub, aud: req.aud, iat, exp, ...req.claims,
        };
        jwt.header = { typ: req.typ ?? 'JWT' };
      },
    },
  },
  // In-memory cookies need some key; loopback test use only.
  cookies: { keys: ['iamlease-oidc-test-cookie-key'] },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));

const server = provider.listen(Number(opt.port), '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
server.on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});
// No graceful drain: keep-alive clients would hold the port a restart is about to reuse.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
