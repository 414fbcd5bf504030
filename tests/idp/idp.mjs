// A real OpenID provider for idlegate's tests: oidc-provider on loopback with one client and
// its development sign-in pages (any password is accepted; the login name becomes the user).
//
// Environment: IDP_PORT (listen port), IDP_REDIRECT_URI (the client's one redirect URI),
// IDP_CLIENT_ID, IDP_CLIENT_SECRET, and optionally IDP_ACCOUNTS: a JSON object from login
// name to claims that replace the default ones for that login (e.g. a `preferred_username`
// other than the login name, `email_verified: false`). The login name is the account id,
// which oidc-provider always sends as `sub`. Prints "ready <issuer> <kid>" once it listens.
//
// Its ID token signing key is made anew at each start (its `kid` is printed), so starting it
// again on the same port is a key rotation as a relying party sees one.

import { generateKeyPairSync, randomUUID } from "node:crypto";
import Provider from "oidc-provider";

const accounts = JSON.parse(process.env.IDP_ACCOUNTS || "{}");
const kid = randomUUID();
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };

const port = Number(process.env.IDP_PORT || 0);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.IDP_CLIENT_ID || "idlegate",
      client_secret: process.env.IDP_CLIENT_SECRET || "idlegate-secret",
      redirect_uris: [process.env.IDP_REDIRECT_URI],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  features: { devInteractions: { enabled: true } },
  // Every granted scope's claims go into the ID token, so the relying party needs no
  // userinfo call.
  conformIdTokenClaims: false,
  cookies: { keys: ["idlegate-test-idp-cookie-key"] },
  jwks: { keys: [signingKey] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          preferred_username: id,
          name: id,
          groups: ["analysts"],
          ...(accounts[id] || {}),
        };
      },
    };
  },
});
provider.proxy = false;
provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${issuer} ${kid}`);
});
