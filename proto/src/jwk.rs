//! P-256 JWKs (RFC 7517/7518) with RFC 7638 thumbprints, base64url, and the JOSE error type
//! both sides share. See docs/decisions/0005-small-jose.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto;

/// Why a JWS or JWK was rejected. The message names the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not a well-formed compact JWS / JSON / base64url.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A header value we do not accept (alg, typ, kid, jwk).
    #[error("unacceptable header: {0}")]
    Header(&'static str),
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
}

/// A public P-256 JWK (RFC 7517/7518), the only key type we bind tokens to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcJwk {
    /// Key type: `EC`.
    pub kty: String,
    /// Curve: `P-256`.
    pub crv: String,
    /// x coordinate, base64url, 32 bytes.
    pub x: String,
    /// y coordinate, base64url, 32 bytes.
    pub y: String,
    /// Key id (JWKS entries only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kid: Option<String>,
    /// Intended use (JWKS entries only).
    #[serde(rename = "use", skip_serializing_if = "Option::is_none", default)]
    pub use_: Option<String>,
    /// Algorithm (JWKS entries only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alg: Option<String>,
}

impl EcJwk {
    /// The JWK of an uncompressed P-256 point.
    pub fn from_point(point: &[u8]) -> Result<Self, JoseError> {
        match point {
            [0x04, rest @ ..] if rest.len() == 64 => {
                let (x, y) = rest.split_at(32);
                Ok(EcJwk {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    x: B64.encode(x),
                    y: B64.encode(y),
                    kid: None,
                    use_: None,
                    alg: None,
                })
            }
            _ => Err(JoseError::Malformed("P-256 point")),
        }
    }

    /// Checks kty/crv and decodes to an uncompressed point (0x04 ‖ x ‖ y). Whether the point is
    /// on the curve is checked when it verifies a signature.
    pub fn to_point(&self) -> Result<Vec<u8>, JoseError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(JoseError::Header("binding key must be an EC P-256 JWK"));
        }
        let x = B64
            .decode(&self.x)
            .map_err(|_| JoseError::Malformed("JWK x"))?;
        let y = B64
            .decode(&self.y)
            .map_err(|_| JoseError::Malformed("JWK y"))?;
        if x.len() != 32 || y.len() != 32 {
            return Err(JoseError::Malformed("JWK coordinates must be 32 bytes"));
        }
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(point)
    }

    /// RFC 7638 thumbprint: SHA-256 over `{"crv":…,"kty":…,"x":…,"y":…}` (members in
    /// lexicographic order, no whitespace). Raw 32 bytes.
    pub fn thumbprint(&self) -> Result<[u8; 32], JoseError> {
        self.to_point()?;
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            self.crv, self.kty, self.x, self.y
        );
        Ok(crypto::sha256(canonical.as_bytes()))
    }

    /// The thumbprint base64url-encoded, as it appears in `cnf.jkt`.
    pub fn jkt(&self) -> Result<String, JoseError> {
        self.thumbprint().map(|t| B64.encode(t))
    }
}

/// base64url without padding.
pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes base64url without padding.
pub fn b64_decode(text: &str) -> Result<Vec<u8>, JoseError> {
    B64.decode(text)
        .map_err(|_| JoseError::Malformed("base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example_shape() {
        // RFC 7638 §3.1's example is RSA; check our EC canonical form against a hand-computed
        // value instead: the member order and the absence of whitespace are what matter.
        let jwk = EcJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
            kid: Some("ignored".into()),
            use_: None,
            alg: None,
        };
        let canonical = r#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        assert_eq!(
            jwk.thumbprint().unwrap(),
            crypto::sha256(canonical.as_bytes())
        );
        assert!(EcJwk {
            crv: "P-384".into(),
            ..jwk.clone()
        }
        .thumbprint()
        .is_err());
    }

    proptest::proptest! {
        /// Any JWK coordinates: thumbprints and points are checked, never panic.
        #[test]
        fn arbitrary_jwks(x in ".{0,60}", y in ".{0,60}", crv in "P-256|P-384|x") {
            let jwk = EcJwk { kty: "EC".into(), crv, x, y, kid: None, use_: None, alg: None };
            let _ = jwk.thumbprint();
            let _ = jwk.to_point();
        }
    }
}
