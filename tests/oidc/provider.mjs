// A real OpenID Connect provider for the console's sign-in tests: panva's oidc-provider
// (OpenID Certified), installed by the test harness under <target>/tools/oidc-provider/.
//
//   node provider.mjs <node_modules dir> <port> <client secret> <redirect URI>
//
// It listens on loopback (127.0.0.1 and ::1) with the issuer `http://localhost:<port>`,
// so the console (on 127.0.0.1) and the provider are different sites, as in production.
// It prints `ready <issuer>` once it listens. One client is registered,
// `ownership-console`, a web client with the console's redirect URI. People sign in with oidc-provider's
// development login form: any login name is an account whose `sub` is that name; the
// names below carry an email claim, verified or not, and every other name has none.
// Consent is granted without a page.
//
// To show that the console refuses a bad ID token, the provider can be told to
// misbehave: `GET /__test/mode/<mode>` makes the token endpoint re-sign the ID token it
// just issued (with its own key, so only the named claim is wrong) until the mode is set
// back to `normal`. Modes: `wrong-nonce`, `wrong-issuer`, `wrong-audience`, `expired`,
// and `bad-signature` (signed by another key under the same key id).

import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , modules, portArg, clientSecret, redirectUri] = process.argv;
if (!modules || !portArg || !clientSecret || !redirectUri) {
  console.error('usage: node provider.mjs <node_modules dir> <port> <client secret> <redirect URI>');
  process.exit(2);
}
const load = (rel) => import(pathToFileURL(path.join(modules, rel)).href);
const { default: Provider } = await load('oidc-provider/lib/index.js');
const jose = await load('jose/dist/webapi/index.js');

const port = Number(portArg);
const issuer = `http://localhost:${port}`;

const ACCOUNTS = {
  alice: { email: 'alice@example.com', email_verified: true },
  bob: { email: 'bob@example.com', email_verified: true },
  mallory: { email: 'bob@example.com', email_verified: false },
};

async function signingKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}
const key = await signingKey('test-key');
const otherKey = await signingKey('test-key');

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'ownership-console',
      client_secret: clientSecret,
      application_type: 'web',
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [key] },
  cookies: { keys: ['ownership-test-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...(ACCOUNTS[id] ?? {}) };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email');
    await grant.save();
    return grant;
  },
});

let mode = 'normal';
const MODES = ['normal', 'wrong-nonce', 'wrong-issuer', 'wrong-audience', 'expired', 'bad-signature'];

provider.use(async (ctx, next) => {
  const set = ctx.path.match(/^\/__test\/mode\/([a-z-]+)$/);
  if (set) {
    if (!MODES.includes(set[1])) {
      ctx.status = 400;
      ctx.body = `unknown mode ${set[1]}`;
      return;
    }
    mode = set[1];
    ctx.body = `mode ${mode}`;
    return;
  }
  await next();
  if (ctx.path !== '/token' || mode === 'normal' || !ctx.body || !ctx.body.id_token) {
    return;
  }
  const claims = jose.decodeJwt(ctx.body.id_token);
  const header = jose.decodeProtectedHeader(ctx.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'wrong-nonce') claims.nonce = 'not-the-nonce-the-console-sent';
  if (mode === 'wrong-issuer') claims.iss = 'http://localhost:1/not-this-provider';
  if (mode === 'wrong-audience') claims.aud = 'some-other-client';
  if (mode === 'expired') {
    claims.iat = now - 600;
    claims.exp = now - 300;
  }
  const signer = await jose.importJWK(mode === 'bad-signature' ? otherKey : key, 'RS256');
  ctx.body.id_token = await new jose.SignJWT(claims).setProtectedHeader(header).sign(signer);
});

const callback = provider.callback();
const servers = [];
const listen = (host) => new Promise((resolve, reject) => {
  const server = http.createServer(callback);
  server.once('error', reject);
  server.listen(port, host, () => {
    servers.push(server);
    resolve();
  });
});
await listen('127.0.0.1');
try {
  await listen('::1');
} catch {
  // No IPv6 loopback here: `localhost` resolves to 127.0.0.1 alone.
}
process.on('SIGTERM', () => {
  servers.forEach((s) => s.close());
  process.exit(0);
});
console.log(`ready ${issuer}`);
