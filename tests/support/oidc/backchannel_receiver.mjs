// A back-channel logout receiver, as an app runs one: every logout token is verified with jose
// (panva's JOSE library, the one openid-client is built on; not written here) against the
// provider's published key set, with the checks of Back-Channel Logout 1.0 §2.6. One JSON line
// per request: {"refused": 503} while it plays "down", {"verified": claims, "token"} or
// {"rejected": why}.
//
// Usage: node backchannel_receiver.mjs ISSUER AUDIENCE JWKS_URI FAIL_FIRST
// with JOSE_MODULE naming jose's entry file. Prints {"port": N} once it listens.
import http from 'node:http';

const [issuer, audience, jwksUri, failFirst] = process.argv.slice(2);
const { jwtVerify, createRemoteJWKSet } = await import(process.env.JOSE_MODULE);
const keys = createRemoteJWKSet(new URL(jwksUri));
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
let downFor = Number(failFirst);
const seen = new Set();

const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const server = http.createServer(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  if (req.method !== 'POST' || req.url !== '/backchannel-logout') {
    res.writeHead(404).end();
    return;
  }
  if (downFor > 0) {
    downFor -= 1;
    say({ refused: 503 });
    res.writeHead(503).end();
    return;
  }
  try {
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') throw new Error('not a form');
    const token = new URLSearchParams(body).get('logout_token');
    const { payload, protectedHeader } = await jwtVerify(token, keys, {
      issuer,
      audience,
      typ: 'logout+jwt',
      maxTokenAge: '2 minutes',
      requiredClaims: ['iat', 'exp', 'jti', 'events'],
    });
    if (typeof payload.events?.[EVENT] !== 'object') throw new Error('no back-channel logout event');
    if ('nonce' in payload) throw new Error('a logout token must not carry a nonce');
    if (!payload.sid && !payload.sub) throw new Error('neither sid nor sub');
    if (seen.has(payload.jti)) throw new Error('a replayed jti');
    seen.add(payload.jti);
    say({ verified: payload, alg: protectedHeader.alg, token });
    res.writeHead(200, { 'cache-control': 'no-store' }).end();
  } catch (error) {
    say({ rejected: String(error) });
    res.writeHead(400).end();
  }
});
server.listen(0, '127.0.0.1', () => say({ port: server.address().port }));
