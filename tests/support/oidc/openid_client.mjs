// A relying party built on openid-client (panva's OpenID-certified library), the way a Node app
// uses it: discovery, an authorization URL with PKCE (S256), state and nonce, the code exchange
// with ID-token validation, userinfo, a refresh, revocation, and the end-session URL. The test
// drives the browser part: this prints the authorization URL, reads back the URL the browser
// was sent to, and prints what it learned as one JSON line. Public client (token endpoint
// auth "none") unless a secret is given.
//
// Usage: node openid_client.mjs ISSUER CLIENT_ID REDIRECT_URI POST_LOGOUT_URI [CLIENT_SECRET]
// with OPENID_CLIENT_MODULE naming the installed library's entry file (the test's, which is
// not installed beside this script).
import * as readline from 'node:readline';

const client = await import(process.env.OPENID_CLIENT_MODULE ?? 'openid-client');

const [issuer, clientId, redirectUri, postLogoutUri, clientSecret] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const config = await client.discovery(
  new URL(issuer),
  clientId,
  clientSecret,
  clientSecret ? client.ClientSecretBasic(clientSecret) : client.None(),
  // The tests serve plain http on loopback; production issuers are https.
  { execute: [client.allowInsecureRequests] },
);
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authorize = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid email profile offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});
say({ authorize: authorize.href });

const callback = (await lines.next()).value;
const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
await client.tokenRevocation(config, refreshed.refresh_token);
let afterRevocation = 'accepted';
try {
  await client.refreshTokenGrant(config, refreshed.refresh_token);
} catch (error) {
  afterRevocation = error.error ?? error.code ?? String(error);
}
say({
  claims,
  userinfo,
  refreshed: refreshed.access_token !== tokens.access_token && refreshed.refresh_token !== tokens.refresh_token,
  refreshedSub: refreshed.claims()?.sub,
  afterRevocation,
  endSession: client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: 'bye',
  }).href,
});
process.exit(0);
