//! A simulated AWS Nitro enclave gets a hardware-bound token from the real broker: the
//! document's `nonce` carries SHA-512("attest-broker/v1" ‖ nonce ‖ jkt). Documents from
//! debug enclaves, with the wrong PCRs, for another nonce, or chaining to an untrusted root
//! are refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/mod.rs"]
mod support;

use attest_broker::client::{Body, Client, Reply};
use attest_broker::crypto::SigningKey;
use attest_broker::jose::{self, EcJwk};
use attest_broker::service::attestation_binding;
use attest_fixtures::nitro::{DocumentBuilder, NitroHierarchy};
use base64::Engine;
use serde_json::{json, Value};
use support::Broker;

struct Enclave {
    hierarchy: NitroHierarchy,
    enclave: attest_fixtures::nitro::EnclaveKey,
    jwk: EcJwk,
    _key: SigningKey,
}

impl Enclave {
    fn new(hierarchy: NitroHierarchy) -> Self {
        let now = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
        let enclave = hierarchy.issue_enclave(now).unwrap();
        let (key, _) = SigningKey::generate().unwrap();
        let jwk = EcJwk::from_point(key.public_point()).unwrap();
        Enclave {
            hierarchy,
            enclave,
            jwk,
            _key: key,
        }
    }

    fn builder(&self) -> DocumentBuilder {
        DocumentBuilder::new(&self.hierarchy, &self.enclave)
    }

    fn attest(
        &self,
        client: &Client,
        secret: &str,
        edit: impl Fn(&mut DocumentBuilder, &[u8]),
    ) -> Reply {
        let challenge = client
            .send("POST", "/v1/challenge", &[], Body::Empty)
            .unwrap();
        let nonce = jose::b64_decode(challenge.body["nonce"].as_str().unwrap()).unwrap();
        let mut doc = self.builder();
        doc.nonce = Some(attestation_binding(&nonce, &self.jwk.thumbprint().unwrap()).to_vec());
        edit(&mut doc, &nonce);
        let signed = doc.sign(self.enclave.key()).unwrap();
        let body = json!({
            "nonce": jose::b64(&nonce),
            "binding_key": self.jwk,
            "evidence": {"type": "aws-nitro", "document": base64::engine::general_purpose::STANDARD.encode(signed)},
        });
        support::post_attest(client, secret, body)
    }
}

#[test]
fn simulated_nitro_enclave_gets_a_token_and_bad_documents_do_not() {
    let now = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let hierarchy = NitroHierarchy::generate(now).unwrap();
    let roots = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(roots.path(), hierarchy.roots_pem()).unwrap();
    let broker = Broker::start_with_config(&format!(
        "[trust]\nextra_nitro_roots = [\"{}\"]\n",
        roots.path().display()
    ));
    let enclave = Enclave::new(hierarchy);
    let pcr0 = hex::encode(&enclave.builder().pcrs[&0]);
    let policy = json!({
        "audiences": ["tools"], "scopes": ["enclave:{agent_id}"], "allow_simulated": true,
        "aws_nitro": {"pcrs": {"0": [pcr0]}, "allow_debug": false}
    });
    let secret = broker.enroll("acme", "enclaves", policy, "enclave-1");
    let client = broker.client();

    let ok = enclave.attest(&client, &secret, |_, _| {});
    assert!(ok.ok(), "{}", ok.body);
    let token = ok.body["access_token"].as_str().unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token)
        .unwrap()
        .claims;
    assert_eq!(claims["att"]["tee"], "aws-nitro");
    assert_eq!(claims["att"]["measurement"], pcr0.as_str());
    assert_eq!(claims["cnf"]["jkt"], enclave.jwk.jkt().unwrap());

    let code = |r: &Reply| {
        (
            r.status,
            r.body["error"]["code"].clone(),
            r.body["error"]["reasons"].clone(),
        )
    };
    let debug = enclave.attest(&client, &secret, |d, _| {
        d.set_debug();
    });
    assert_eq!(
        code(&debug),
        (
            403,
            json!("policy.denied"),
            json!(["policy.debug", "policy.pcr"])
        )
    );
    let other_pcr = enclave.attest(&client, &secret, |d, _| {
        d.pcrs.insert(0, vec![7; 48]);
    });
    assert_eq!(
        code(&other_pcr),
        (403, json!("policy.denied"), json!(["policy.pcr"]))
    );
    let wrong_nonce = enclave.attest(&client, &secret, |d, _| d.nonce = Some(vec![1; 64]));
    assert_eq!(
        code(&wrong_nonce),
        (403, json!("evidence.rejected"), json!(["nitro.nonce"]))
    );

    // An enclave under a hierarchy the broker does not trust.
    let stranger = Enclave::new(NitroHierarchy::generate(now).unwrap());
    let r = stranger.attest(&client, &secret, |d, _| {
        d.pcrs.insert(0, hex::decode(&pcr0).unwrap());
    });
    assert_eq!(
        code(&r),
        (403, json!("evidence.rejected"), json!(["nitro.chain"]))
    );
}
