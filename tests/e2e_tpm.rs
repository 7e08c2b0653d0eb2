//! An swtpm host goes through the whole TPM path against the real broker: AK enrollment by
//! credential activation (our MakeCredential, the TPM's ActivateCredential, the EK certificate
//! checked against swtpm's local CA), then challenge → quote + TPM2_Certify of a TPM-resident
//! P-256 binding key → token → DPoP refresh with a proof signed inside the TPM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/mod.rs"]
mod support;

use attest_broker::client::{Body, Client, Reply};
use attest_broker::crypto;
use attest_broker::jose::{self, EcJwk};
use attest_broker::service::attestation_binding;
use attest_sidecar::swtpm_harness::Swtpm;
use attest_sidecar::tpm::{AkKind, BindingKey, EkKind, Tpm};
use attest_verifiers::tpm::HashAlg;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use support::Broker;

fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// PCR 16 after extending SHA-256(`label`) once from zero.
fn pcr16_after(label: &str) -> Vec<u8> {
    let digest = crypto::sha256(label.as_bytes());
    crypto::sha256(&[[0u8; 32].as_slice(), &digest].concat()).to_vec()
}

struct Host {
    tpm: Tpm,
    ak: attest_sidecar::tpm::Ak,
    binding: BindingKey,
    jwk: EcJwk,
}

impl Host {
    fn attest(
        &mut self,
        client: &Client,
        secret: &str,
        certify_other: Option<&BindingKey>,
    ) -> Reply {
        let challenge = client
            .send("POST", "/v1/challenge", &[], Body::Empty)
            .unwrap();
        let nonce = jose::b64_decode(challenge.body["nonce"].as_str().unwrap()).unwrap();
        let binding = attestation_binding(&nonce, &self.jwk.thumbprint().unwrap());
        let qualifying = &binding[..32];
        let quote = self
            .tpm
            .quote(&self.ak, qualifying, &[(HashAlg::Sha256, vec![16])])
            .unwrap();
        let certified = certify_other.unwrap_or(&self.binding);
        let cert = self.tpm.certify(&self.ak, certified, qualifying).unwrap();
        let pcrs: Value = serde_json::from_str(&quote.pcrs_json()).unwrap();
        let body = json!({
            "nonce": jose::b64(&nonce),
            "binding_key": self.jwk,
            "evidence": {
                "type": "tpm",
                "quote": b64(&quote.attest),
                "signature": b64(&quote.signature),
                "pcrs": pcrs,
                "binding_key_public": b64(&certified.public().tpm2b_public()),
                "certify": b64(&cert.attest),
                "certify_signature": b64(&cert.signature),
            }
        });
        support::post_attest(client, secret, body)
    }

    /// A DPoP proof whose ES256 signature is made by the TPM-resident binding key.
    fn dpop(&mut self, url: &str, token: &str) -> String {
        let what = attest_proto::dpop::ProofFor {
            method: "POST",
            url,
            access_token: Some(token),
            iat: attest_broker::service::now(),
        };
        let input = attest_proto::dpop::signing_input(&self.jwk, &what).unwrap();
        let sig = self
            .tpm
            .sign_digest(&self.binding, &crypto::sha256(input.as_bytes()))
            .unwrap();
        attest_proto::dpop::finish(&input, &sig)
    }
}

#[test]
fn swtpm_host_enrolls_attests_and_refreshes_with_a_tpm_bound_key() {
    let swtpm = Swtpm::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ek-root.pem");
    std::fs::write(&root, swtpm.ca_root_pem().unwrap()).unwrap();
    let broker = Broker::start_with_config(&format!(
        "[trust]\ntpm_ek_roots = [\"{}\"]\n",
        root.display()
    ));
    let policy = json!({
        "audiences": ["tools"], "scopes": ["tpm:{agent_id}"],
        "tpm": {"pcrs": {"sha256": {"16": [hex::encode(pcr16_after("good-kernel"))]}}}
    });
    let secret = broker.enroll("acme", "tpm-hosts", policy, "tpm-host-1");
    let client = broker.client();
    let auth = format!("Bootstrap {secret}");

    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let ek = tpm.create_ek(EkKind::Rsa2048).unwrap();
    let ek_cert = tpm.ek_certificate(EkKind::Rsa2048).unwrap().unwrap();
    let issuer = attest_verifiers::x509::parse_bundle(&swtpm.ca_issuer_pem().unwrap()).unwrap();
    let ak = tpm.create_ak(&ek, AkKind::Rsa2048).unwrap();
    let binding = tpm.create_binding_key().unwrap();
    let jwk = EcJwk::from_point(binding.public_point()).unwrap();

    // Before enrollment the broker has no AK for this agent.
    let mut host = Host {
        tpm,
        ak,
        binding,
        jwk,
    };
    let r = host.attest(&client, &secret, None);
    assert_eq!(
        (r.status, r.body["error"]["reasons"].clone()),
        (403, json!(["tpm.chain"])),
        "{}",
        r.body
    );

    // Enrollment: MakeCredential at the broker, ActivateCredential in the TPM.
    let enroll = |ak_public: Vec<u8>| {
        client
            .send(
                "POST",
                "/v1/tpm/enroll",
                &[("authorization", &auth)],
                Body::Json(json!({
                    "ek_public": b64(&ek.public().tpm2b_public()),
                    "ek_certificate": b64(&ek_cert),
                    "ek_chain": [b64(issuer[0].der())],
                    "ak_public": b64(&ak_public),
                })),
            )
            .unwrap()
    };
    let started = enroll(host.ak.public().tpm2b_public());
    assert_eq!(started.status, 201, "{}", started.body);
    let blob = STANDARD
        .decode(started.body["credential_blob"].as_str().unwrap())
        .unwrap();
    let enc = STANDARD
        .decode(started.body["encrypted_secret"].as_str().unwrap())
        .unwrap();
    // A wrong secret is refused; the TPM's answer is accepted.
    let activate = |s: &[u8]| {
        client
            .send(
                "POST",
                "/v1/tpm/activate",
                &[("authorization", &auth)],
                Body::Json(
                    json!({"enrollment_id": started.body["enrollment_id"], "secret": b64(s)}),
                ),
            )
            .unwrap()
    };
    assert_eq!(activate(&[0u8; 32]).status, 403);
    let recovered = host
        .tpm
        .activate_credential(&ek, &host.ak, &blob, &enc)
        .unwrap();
    let done = activate(&recovered);
    assert!(done.ok(), "{}", done.body);
    assert_eq!(
        activate(&recovered).status,
        409,
        "an enrollment completes once"
    );
    // A credential made for another AK cannot be activated with this one.
    let other_ak = host.tpm.create_ak(&ek, AkKind::EccP256).unwrap();
    let other = enroll(other_ak.public().tpm2b_public());
    let other_blob = STANDARD
        .decode(other.body["credential_blob"].as_str().unwrap())
        .unwrap();
    let other_enc = STANDARD
        .decode(other.body["encrypted_secret"].as_str().unwrap())
        .unwrap();
    assert!(host
        .tpm
        .activate_credential(&ek, &host.ak, &other_blob, &other_enc)
        .is_err());

    // Attest with the measured PCR the policy expects.
    let digest = crypto::sha256(b"good-kernel");
    host.tpm
        .pcr_extend(16, &[(HashAlg::Sha256, &digest)])
        .unwrap();
    let ok = host.attest(&client, &secret, None);
    assert!(ok.ok(), "{}", ok.body);
    let token = ok.body["access_token"].as_str().unwrap().to_string();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(&token)
        .unwrap()
        .claims;
    assert_eq!(claims["att"]["tee"], "tpm");
    assert_eq!(claims["cnf"]["jkt"], host.jwk.jkt().unwrap());

    // Refresh with a DPoP proof signed by the TPM.
    let url = format!("{}/v1/token/refresh", broker.url);
    let proof = host.dpop(&url, &token);
    let refreshed = client
        .send(
            "POST",
            "/v1/token/refresh",
            &[
                ("authorization", &format!("DPoP {token}")),
                ("dpop", &proof),
            ],
            Body::Empty,
        )
        .unwrap();
    assert!(refreshed.ok(), "{}", refreshed.body);
    let refreshed_token = refreshed.body["access_token"].as_str().unwrap().to_string();
    let introspect = |t: &str| {
        broker.admin(
            "POST",
            "/v1/introspect",
            Body::Form(vec![("token".into(), t.into())]),
        )
    };
    assert_eq!(introspect(&refreshed_token)["active"], true);
    assert_eq!(introspect(&refreshed_token)["att"]["tee"], "tpm");
    broker.admin(
        "POST",
        "/v1/revoke",
        Body::Form(vec![("token".into(), refreshed_token.clone())]),
    );
    assert_eq!(introspect(&refreshed_token), json!({"active": false}));

    // Certifying another TPM key than the one presented as binding_key is refused.
    let second = host.tpm.create_binding_key().unwrap();
    let r = host.attest(&client, &secret, Some(&second));
    assert_eq!(
        (r.status, r.body["error"]["reasons"].clone()),
        (403, json!(["tpm.chain"])),
        "{}",
        r.body
    );

    // A PCR that moved away from the reference value is denied by policy.
    host.tpm
        .pcr_extend(16, &[(HashAlg::Sha256, &crypto::sha256(b"rootkit"))])
        .unwrap();
    let r = host.attest(&client, &secret, None);
    assert_eq!(
        (r.status, r.body["error"]["reasons"].clone()),
        (403, json!(["policy.pcr"])),
        "{}",
        r.body
    );
}
