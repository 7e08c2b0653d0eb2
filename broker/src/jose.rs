//! A deliberately small JOSE module: ES256 JWTs (our access tokens), P-256 JWKs with RFC 7638
//! thumbprints, and RFC 9449 DPoP proof checks. See docs/decisions/0005-small-jose.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{self, CryptoError, SigningKey};

/// Largest compact JWS we parse (tokens and proofs are well under 4 KiB).
pub const MAX_JWS_LEN: usize = 8 * 1024;

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

/// Signs `claims` as a compact JWS with ES256.
pub fn sign_jwt<C: Serialize>(
    key: &SigningKey,
    kid: &str,
    typ: &str,
    claims: &C,
) -> Result<String, CryptoError> {
    let header = serde_json::json!({"alg": "ES256", "typ": typ, "kid": kid});
    let header = b64(header.to_string().as_bytes());
    let payload = serde_json::to_vec(claims).map_err(|_| CryptoError("claims do not serialise"))?;
    let signing_input = format!("{header}.{}", b64(&payload));
    let sig = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64(&sig)))
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug, Clone)]
pub struct UnverifiedJws {
    /// The protected header.
    pub header: Value,
    payload: Vec<u8>,
    signing_input_len: usize,
    signature: Vec<u8>,
    raw: String,
}

impl UnverifiedJws {
    /// Splits and decodes a compact JWS (three base64url parts, JSON header and payload).
    pub fn parse(compact: &str) -> Result<Self, JoseError> {
        if compact.len() > MAX_JWS_LEN {
            return Err(JoseError::Malformed("JWS too long"));
        }
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed("compact JWS"));
        };
        let header: Value = serde_json::from_slice(&b64_decode(h)?)
            .map_err(|_| JoseError::Malformed("JWS header"))?;
        if !header.is_object() {
            return Err(JoseError::Malformed("JWS header"));
        }
        Ok(UnverifiedJws {
            header,
            payload: b64_decode(p)?,
            signing_input_len: h.len() + 1 + p.len(),
            signature: b64_decode(s)?,
            raw: compact.to_string(),
        })
    }

    /// A string member of the header.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Decodes the payload without checking the signature. The caller must authenticate the
    /// token some other way (the broker compares its hash with the issuance record).
    pub fn payload_unverified<C: DeserializeOwned>(&self) -> Result<C, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed("JWT claims"))
    }

    /// Checks `alg` is ES256 and verifies the signature with `public_point`, then decodes the
    /// payload as `C`.
    pub fn verify<C: DeserializeOwned>(&self, public_point: &[u8]) -> Result<C, JoseError> {
        if self.header_str("alg") != Some("ES256") {
            return Err(JoseError::Header("alg must be ES256"));
        }
        let input = self
            .raw
            .as_bytes()
            .get(..self.signing_input_len)
            .ok_or(JoseError::Malformed("compact JWS"))?;
        if !crypto::verify_es256(public_point, input, &self.signature) {
            return Err(JoseError::Signature);
        }
        serde_json::from_slice(&self.payload).map_err(|_| JoseError::Malformed("JWT claims"))
    }
}

/// The claims of a DPoP proof (RFC 9449 §4.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DpopClaims {
    /// Unique proof id.
    pub jti: String,
    /// HTTP method.
    pub htm: String,
    /// HTTP URI without query and fragment.
    pub htu: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// base64url SHA-256 of the access token, when one is presented.
    pub ath: Option<String>,
}

/// A DPoP proof whose signature verified with the key in its own header.
#[derive(Debug, Clone)]
pub struct VerifiedDpop {
    /// The proof's public key.
    pub jwk: EcJwk,
    /// Its RFC 7638 thumbprint, base64url.
    pub jkt: String,
    /// The proof's claims.
    pub claims: DpopClaims,
}

/// Checks a DPoP proof's form and signature (RFC 9449 §4.3 steps 1–7): one compact JWS, `typ`
/// `dpop+jwt`, `alg` ES256, a public `jwk` header that verifies the signature. The caller then
/// checks htm, htu, iat window, jti uniqueness and ath.
pub fn verify_dpop_proof(proof: &str) -> Result<VerifiedDpop, JoseError> {
    let jws = UnverifiedJws::parse(proof)?;
    if jws.header_str("typ") != Some("dpop+jwt") {
        return Err(JoseError::Header("DPoP typ must be dpop+jwt"));
    }
    let jwk_value = jws
        .header
        .get("jwk")
        .ok_or(JoseError::Header("DPoP proof has no jwk"))?;
    if jwk_value.get("d").is_some() {
        return Err(JoseError::Header("DPoP jwk must not contain a private key"));
    }
    let jwk: EcJwk = serde_json::from_value(jwk_value.clone())
        .map_err(|_| JoseError::Header("DPoP jwk is not an EC P-256 key"))?;
    let point = jwk.to_point()?;
    let claims: DpopClaims = jws.verify(&point)?;
    let jkt = jwk.jkt()?;
    Ok(VerifiedDpop { jwk, jkt, claims })
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
    }

    #[test]
    fn jwt_round_trip_and_tampering() {
        let (key, _) = SigningKey::generate().unwrap();
        let token = sign_jwt(&key, "k1", "at+jwt", &serde_json::json!({"sub": "a"})).unwrap();
        let jws = UnverifiedJws::parse(&token).unwrap();
        assert_eq!(jws.header_str("kid"), Some("k1"));
        let claims: Value = jws.verify(key.public_point()).unwrap();
        assert_eq!(claims["sub"], "a");
        let mut bad = token.clone();
        bad.insert(bad.find('.').unwrap() + 2, 'A');
        assert!(UnverifiedJws::parse(&bad)
            .and_then(|j| j.verify::<Value>(key.public_point()))
            .is_err());
        assert!(UnverifiedJws::parse("a.b").is_err());
        assert!(UnverifiedJws::parse(&"a".repeat(MAX_JWS_LEN + 1)).is_err());
    }

    #[test]
    fn dpop_proof_checks() {
        let (key, _) = SigningKey::generate().unwrap();
        let jwk = EcJwk::from_point(key.public_point()).unwrap();
        let claims = serde_json::json!({"jti": "1", "htm": "POST", "htu": "http://x/y", "iat": 5});
        let proof = |typ: &str, jwk: Value| {
            let header = serde_json::json!({"alg": "ES256", "typ": typ, "jwk": jwk});
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = key.sign(input.as_bytes()).unwrap();
            format!("{input}.{}", b64(&sig))
        };
        let good =
            verify_dpop_proof(&proof("dpop+jwt", serde_json::to_value(&jwk).unwrap())).unwrap();
        assert_eq!(good.jkt, jwk.jkt().unwrap());
        assert_eq!(good.claims.htm, "POST");
        assert!(verify_dpop_proof(&proof("JWT", serde_json::to_value(&jwk).unwrap())).is_err());
        let (other, _) = SigningKey::generate().unwrap();
        let other_jwk = EcJwk::from_point(other.public_point()).unwrap();
        assert_eq!(
            verify_dpop_proof(&proof(
                "dpop+jwt",
                serde_json::to_value(&other_jwk).unwrap()
            ))
            .unwrap_err(),
            JoseError::Signature
        );
    }

    proptest::proptest! {
        /// Attacker-supplied tokens and proofs: any string gives Ok or a typed error.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,600}") {
            let _ = UnverifiedJws::parse(&text).map(|j| j.verify::<Value>(&[4; 65]));
            let _ = verify_dpop_proof(&text);
        }

        /// Three base64url parts with arbitrary JSON-ish content.
        #[test]
        fn arbitrary_parts_never_panic(h in ".{0,200}", p in ".{0,200}", sig in proptest::collection::vec(0u8.., 0..80)) {
            let compact = format!("{}.{}.{}", b64(h.as_bytes()), b64(p.as_bytes()), b64(&sig));
            let _ = verify_dpop_proof(&compact);
            let _ = UnverifiedJws::parse(&compact).map(|j| j.payload_unverified::<Value>());
        }

        /// Any JWK coordinates: thumbprints and points are checked, never panic.
        #[test]
        fn arbitrary_jwks(x in ".{0,60}", y in ".{0,60}", crv in "P-256|P-384|x") {
            let jwk = EcJwk { kty: "EC".into(), crv, x, y, kid: None, use_: None, alg: None };
            let _ = jwk.thumbprint();
            let _ = jwk.to_point();
        }
    }
}
