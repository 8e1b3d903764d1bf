// A standards-following OpenID Connect provider for the portal's browser tests: panva's
// oidc-provider (the npm package this folder pins), one Provider per realm mounted under
// /realms/{realm} the way Keycloak lays its realms out, so that the issuer of a realm is
// exactly http://127.0.0.1:{port}/realms/{realm}.
//
// Usage: node provider.mjs CONFIG.json   (written by tests/oidc_provider.py)
//   {
//     "port": 12345,
//     "client": {"client_id": "...", "redirect_uris": [...], "post_logout_redirect_uris": [...]},
//     "realms": {
//       "<realm>": {
//         "audience": "ticketing-api",            // the access token's aud
//         "scopes": "tickets:read tickets:write", // what the API (resource server) may grant
//         "access_token_alg": "RS256",            // or ES256
//         "users": {"<login>": {<claims of the access token>}}
//       }
//     }
//   }
//
// Unlike Keycloak it adds no default scopes: an access token carries only the scopes the
// client asked for that the resource server allows. Sign-in is the development login form
// (any password); the portal client is first-party, so there is no consent screen (as with a
// Keycloak client without "consent required"). GET /__stats answers what the tests count:
// token endpoint requests per realm and the end-session requests received.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
const base = `http://127.0.0.1:${port}`;
// The resource indicator the portal's tokens are for; the portal sends no `resource`
// parameter, so every authorization request defaults to it.
const RESOURCE = 'urn:ticketing:api';

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `ec-${randomBytes(6).toString('hex')}`, alg: 'ES256', use: 'sig' },
  ];
}

const stats = { token_requests: {}, end_session: [] };

function realmProvider(name, realm) {
  const users = realm.users || {};
  const allowed = new Set((realm.scopes ?? 'tickets:read tickets:write').split(' ').filter(Boolean));
  const provider = new Provider(`${base}/realms/${name}`, {
    clients: [
      {
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        ...config.client,
      },
    ],
    jwks: { keys: signingKeys() },
    // PKCE (S256) is required of public clients by default.
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        // The code flow's token request carries no `resource`: use the one granted.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            // A resource server's scope may not be empty: a realm that grants nothing of the
            // API's gets a scope nobody asks for.
            scope: [...allowed].join(' ') || 'directory:read',
            audience: realm.audience || 'ticketing-api',
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: realm.access_token_alg || 'RS256' } },
          };
        },
      },
    },
    async findAccount(ctx, sub) {
      if (!Object.hasOwn(users, sub)) return undefined;
      return { accountId: sub, async claims() { return { sub }; } };
    },
    async extraTokenClaims(ctx, token) {
      return Object.hasOwn(users, token.accountId) ? users[token.accountId] : undefined;
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      if (!ctx.oidc.session.accountId) return undefined;
      // First-party client: what it asks for is granted as far as the realm allows.
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers)) {
        const granted = [...ctx.oidc.requestParamScopes].filter((s) => server.scopes.has(s));
        if (granted.length) grant.addResourceScope(indicator, granted.join(' '));
      }
      await grant.save();
      return grant;
    },
    // Realms share the host: each keeps its own cookies.
    cookies: {
      keys: [randomBytes(32).toString('hex')],
      names: {
        session: `_session_${name}`,
        interaction: `_interaction_${name}`,
        resume: `_interaction_resume_${name}`,
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error(`${name}: server_error`, err));
  return provider;
}

const realms = new Map(
  Object.entries(config.realms).map(([name, realm]) => [name, realmProvider(name, realm).callback()]),
);

function record(realm, path, url) {
  if (path === '/token') {
    stats.token_requests[realm] = (stats.token_requests[realm] || 0) + 1;
  } else if (path === '/session/end') {
    stats.end_session.push({
      realm,
      id_token_hint: url.searchParams.get('id_token_hint'),
      post_logout_redirect_uri: url.searchParams.get('post_logout_redirect_uri'),
      client_id: url.searchParams.get('client_id'),
    });
  }
}

const server = createServer((req, res) => {
  const url = new URL(req.url, base);
  if (url.pathname === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const match = /^\/realms\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const handler = match && realms.get(match[1]);
  if (!handler) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"realm not found"}');
    return;
  }
  const rest = match[2] || '/';
  record(match[1], rest, url);
  // Mounted as the docs mount a provider in a framework: the provider sees the path below
  // the mount point and works out its mount path from originalUrl.
  req.originalUrl = req.url;
  req.url = rest + url.search;
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider test realms on ${base}/realms/{${[...realms.keys()].join(',')}}`);
});
