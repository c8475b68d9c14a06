"""Identity: verify bearer tokens (JWT) into an :class:`carnet.domain.actors.Actor`.

* :mod:`carnet.auth.tokens` — :class:`~carnet.auth.tokens.TokenVerifier`, the only way a request
  becomes an actor: signature, issuer, audience, expiry, then the claims contract of
  docs/tokens.md.
* :mod:`carnet.auth.dev_issuer` — :class:`~carnet.auth.dev_issuer.DevIssuer`, the built-in
  development issuer (CARNET_DEV_ISSUER=1), which mints tokens for tests and demos.
* :mod:`carnet.auth.routes` — ``POST /dev/token`` and ``GET /dev/jwks`` for the dev issuer.
"""
