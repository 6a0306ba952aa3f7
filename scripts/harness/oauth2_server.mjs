// OAuth2 authorization server for the tests and the demo: oidc-provider (a certified
// OpenID Connect / OAuth 2.0 implementation) with two confidential clients, one
// authenticating with HTTP basic and one with form fields, plus a refresh token minted
// through the provider's own model at start-up and written to REFRESH_TOKEN_FILE.
// It also serves /api/hello, a protected resource that accepts only access tokens this
// server issued (looked up in the provider's own store), so a probe's token is checked for real.
//
// Environment: PORT, CLIENT_SECRET, REFRESH_TOKEN_FILE.
import { writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 18090);
const secret = process.env.CLIENT_SECRET;
if (!secret) throw new Error('CLIENT_SECRET is required');
const issuer = `http://127.0.0.1:${port}`;

const common = { client_secret: secret, redirect_uris: ['http://127.0.0.1/callback'], response_types: ['code'], scope: 'openid offline_access read write' };
const provider = new Provider(issuer, {
  clients: [
    { ...common, client_id: 'authprobe-client', token_endpoint_auth_method: 'client_secret_basic', grant_types: ['client_credentials', 'authorization_code', 'refresh_token'] },
    { ...common, client_id: 'authprobe-post-client', token_endpoint_auth_method: 'client_secret_post', grant_types: ['client_credentials'] },
  ],
  scopes: ['openid', 'offline_access', 'read', 'write'],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false }, introspection: { enabled: true } },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  rotateRefreshToken: () => false,
  ttl: { RefreshToken: 30 * 24 * 3600, ClientCredentials: 600, AccessToken: 600 },
});
provider.proxy = true;

// The protected resource: 200 for a token this server issued and that has not expired.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/api/hello') return next();
  const header = ctx.get('authorization') || '';
  const value = header.startsWith('Bearer ') ? header.slice(7) : '';
  const token = value && ((await provider.ClientCredentials.find(value)) || (await provider.AccessToken.find(value)));
  if (!token || token.isExpired) {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
    ctx.body = 'unauthorized\n';
    return;
  }
  ctx.body = `hello ${token.clientId}\n`;
});

const client = await provider.Client.find('authprobe-client');
const grant = new provider.Grant({ accountId: 'demo-user', clientId: client.clientId });
grant.addOIDCScope('openid offline_access');
const grantId = await grant.save();
const refresh = new provider.RefreshToken({ accountId: 'demo-user', client, grantId, scope: 'openid offline_access', gty: 'authorization_code' });
const refreshValue = await refresh.save();
if (process.env.REFRESH_TOKEN_FILE) writeFileSync(process.env.REFRESH_TOKEN_FILE, refreshValue + '\n', { mode: 0o600 });

provider.listen(port, '127.0.0.1', () => console.log(`oauth2 server on ${issuer}`));
