// An Express app that signs people in with Auth.js (@auth/express), magiclink configured as a
// generic OpenID Connect provider exactly as docs/integration.md shows it. `/` says who is
// signed in. It listens on an unused loopback port and prints {"port": N} when ready.
//
// Usage: node authjs_app.mjs ISSUER CLIENT_ID CLIENT_SECRET, with AUTHJS_MODULES naming the
// node_modules folder that holds @auth/express and express (the test's, not beside this file).
const [issuer, clientId, clientSecret] = process.argv.slice(2);
const modules = process.env.AUTHJS_MODULES;
const { ExpressAuth, getSession } = await import(`${modules}/@auth/express/index.js`);
const express = (await import(`${modules}/express/index.js`)).default;

const config = {
  trustHost: true,
  secret: 'authjs-test-secret-authjs-test-secret-authjs',
  providers: [
    {
      id: 'magiclink',
      name: 'magiclink',
      type: 'oidc',
      issuer,
      clientId,
      clientSecret,
      checks: ['pkce', 'state', 'nonce'],
    },
  ],
};

const app = express();
app.use('/auth/*', ExpressAuth(config));
app.get('/', async (req, res) => {
  const session = await getSession(req, config);
  const who = session?.user?.email ? `Signed in as ${session.user.email}` : 'Not signed in';
  res.send(`<!doctype html><title>App</title><p id="who">${who}</p>`);
});
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
