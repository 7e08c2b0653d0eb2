//! Building DPoP proofs (RFC 9449 §4.2) with any ES256 signer: a TPM-resident key signs a
//! digest, an in-memory key signs the message. The broker checks them in `attest_broker::jose`.

use serde_json::json;

use crate::crypto;
use crate::jwk::{b64, EcJwk};

/// What a proof is for.
#[derive(Debug, Clone, Copy)]
pub struct ProofFor<'a> {
    /// HTTP method (`htm`), e.g. `POST`.
    pub method: &'a str,
    /// The target URI (`htu`); any query or fragment is dropped (RFC 9449 §4.2).
    pub url: &'a str,
    /// The access token the request presents, bound by `ath`.
    pub access_token: Option<&'a str>,
    /// Issued-at, seconds since the epoch.
    pub iat: i64,
}

/// `ath`: base64url SHA-256 of the access token.
pub fn ath(access_token: &str) -> String {
    b64(&crypto::sha256(access_token.as_bytes()))
}

/// `htu` for `url`: without query and fragment.
pub fn htu(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url.get(..end).unwrap_or(url)
}

/// The JWS signing input (`header.payload`) of a proof by `jwk` for `what`, with a fresh
/// random `jti`.
pub fn signing_input(jwk: &EcJwk, what: &ProofFor<'_>) -> Result<String, crypto::CryptoError> {
    let jti = b64(&crypto::random::<16>()?);
    let public = EcJwk {
        kid: None,
        use_: None,
        alg: None,
        ..jwk.clone()
    };
    let header = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public});
    let mut claims = json!({"jti": jti, "htm": what.method, "htu": htu(what.url), "iat": what.iat});
    if let (Some(token), Some(map)) = (what.access_token, claims.as_object_mut()) {
        map.insert("ath".into(), ath(token).into());
    }
    Ok(format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    ))
}

/// The compact proof: `signing_input` and its ES256 signature (`r ‖ s`).
pub fn finish(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64(signature))
}

/// A proof signed with an in-memory key.
pub fn proof_with_memory_key(
    key: &crypto::MemoryKey,
    jwk: &EcJwk,
    what: &ProofFor<'_>,
) -> Result<String, crypto::CryptoError> {
    let input = signing_input(jwk, what)?;
    let sig = key.sign(input.as_bytes())?;
    Ok(finish(&input, &sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::b64_decode;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    use serde_json::Value;

    #[test]
    fn proofs_have_the_rfc9449_shape_and_verify() {
        let key = crypto::MemoryKey::generate().unwrap();
        let jwk = EcJwk::from_point(key.public_point()).unwrap();
        let what = ProofFor {
            method: "GET",
            url: "https://tool.example/x?secret=1#f",
            access_token: Some("tok"),
            iat: 1_700_000_000,
        };
        let proof = proof_with_memory_key(&key, &jwk, &what).unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&b64_decode(parts[0]).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&b64_decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["x"], jwk.x);
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(claims["htu"], "https://tool.example/x");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["ath"], ath("tok"));
        assert_eq!(
            b64_decode(claims["jti"].as_str().unwrap()).unwrap().len(),
            16
        );
        let input = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_point())
            .verify(input.as_bytes(), &b64_decode(parts[2]).unwrap())
            .unwrap();
        // Two proofs never share a jti.
        let again = proof_with_memory_key(&key, &jwk, &what).unwrap();
        assert_ne!(again.split('.').nth(1), proof.split('.').nth(1));
    }

    #[test]
    fn htu_drops_query_and_fragment_only() {
        assert_eq!(htu("http://a/b?c#d"), "http://a/b");
        assert_eq!(htu("http://a/b#d?c"), "http://a/b");
        assert_eq!(htu("http://a/b"), "http://a/b");
    }
}
