//! A deliberately small JOSE module: ES256 JWTs (our access tokens) and RFC 9449 DPoP proof
//! checks. JWKs, thumbprints and base64url come from `attest-proto`, which the attesting side
//! shares. See docs/decisions/0005-small-jose.md.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

pub use attest_proto::jwk::{b64, b64_decode, EcJwk, JoseError};

use crate::crypto::{self, CryptoError, SigningKey};

/// Largest compact JWS we parse (tokens and proofs are well under 4 KiB).
pub const MAX_JWS_LEN: usize = 8 * 1024;

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

    }
}
