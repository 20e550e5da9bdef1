// A Node.js backend that asks magiclink who is signed in (Node 18+, no packages).
import http from "node:http";

const MAGICLINK_URL = process.env.MAGICLINK_URL ?? "http://127.0.0.1:3000";

// Who is signed in on this request (null if nobody), and the cookies magiclink wants the
// browser to get (a session it just extended).
async function currentUser(req) {
  const response = await fetch(`${MAGICLINK_URL}/api/auth/session`, {
    headers: { cookie: req.headers.cookie ?? "", accept: "application/json" },
  });
  if (!response.ok) throw new Error(`magiclink answered ${response.status}`);
  const session = await response.json(); // null when signed out
  return { user: session?.user ?? null, setCookies: response.headers.getSetCookie() };
}

const server = http.createServer(async (req, res) => {
  let answer;
  try {
    answer = await currentUser(req);
  } catch {
    res.writeHead(503, { "content-type": "text/plain" }).end("sign-in service unavailable\n");
    return;
  }
  // Pass magiclink's cookies on, so an extended session stays extended in the browser.
  if (answer.setCookies.length > 0) res.setHeader("set-cookie", answer.setCookies);
  if (!answer.user) {
    res.writeHead(401, { "content-type": "text/plain" }).end("not signed in\n");
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" }).end(`Hello, ${answer.user.email}\n`);
});

server.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
