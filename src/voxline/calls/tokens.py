"""Access tokens: short-lived, signed, bound to one call.

A token is an HS256 JWT over `{sub: call_id, jti: nonce, exp, exp_ms, aud}`. Nothing secret is
stored: the call row keeps the nonce and expiry, and the same claims sign to the same token, so
get-call can show it again. A token is useless against the REST API (which takes API keys only)
and is accepted once, for the call it names, before it expires.
"""

from dataclasses import dataclass

import jwt

AUDIENCE = "voxline:web-call"


class TokenError(Exception):
    """The token is forged, malformed, for another purpose, or expired."""


@dataclass(frozen=True)
class TokenClaims:
    call_id: str
    nonce: str
    expires_at_ms: int


class AccessTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, call_id: str, nonce: str, expires_at_ms: int) -> str:
        claims = {
            "aud": AUDIENCE,
            "sub": call_id,
            "jti": nonce,
            "exp": -(-expires_at_ms // 1000),
            "exp_ms": expires_at_ms,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str, now_ms: int) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["sub", "jti", "exp", "aud"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid access token: {exc}") from exc
        expires_at_ms = int(claims.get("exp_ms", claims["exp"] * 1000))
        if now_ms >= expires_at_ms:
            raise TokenError("access token expired")
        return TokenClaims(call_id=str(claims["sub"]), nonce=str(claims["jti"]), expires_at_ms=expires_at_ms)
