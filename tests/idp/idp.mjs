// A real OpenID provider for idlegate's tests: oidc-provider on loopback with one client and
// its development sign-in pages (any password is accepted; the login name becomes the user).
//
// Environment: IDP_PORT (listen port), IDP_REDIRECT_URI (the client's one redirect URI),
// IDP_CLIENT_ID, IDP_CLIENT_SECRET. Prints "ready <issuer>" once it listens.

import Provider from "oidc-provider";

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
        };
      },
    };
  },
});
provider.proxy = false;
provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
