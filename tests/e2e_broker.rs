//! End to end against the real `attest-broker` binary on loopback: a simulated SEV-SNP host
//! goes challenge → attest → token → introspect → DPoP refresh → revoke → introspect, and
//! every negative the issue lists gets its 4xx and code — never a 5xx, never a dead process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/mod.rs"]
mod support;

use attest_broker::client::Body;
use attest_broker::jose;
use serde_json::{json, Value};
use support::{independent_check, policy_for, Broker};

fn introspect(broker: &Broker, token: &str) -> Value {
    broker.admin(
        "POST",
        "/v1/introspect",
        Body::Form(vec![("token".into(), token.into())]),
    )
}

#[test]
fn simulated_snp_host_full_lifecycle() {
    let broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll("acme", "snp-agents", policy_for(&host), "agent-7");
    let client = broker.client();

    let held = host.attest(&client, &secret).unwrap();
    let claims = independent_check(&broker, &held.token);
    assert_eq!(claims["sub"], "agent-7");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["scope"], "tools:agent-7:invoke");
    assert_eq!(
        claims["cnf"]["jkt"],
        host.jwk().jkt().unwrap(),
        "cnf.jkt is the binding key's RFC 7638 thumbprint"
    );
    assert_eq!(claims["att"]["tee"], "sev-snp");
    assert_eq!(claims["att"]["measurement"], host.measurement());
    assert_eq!(claims["budget"]["max_tool_calls"], 50);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let checks = held.reply["appraisal"]["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["passed"] == true) && checks.len() >= 4);

    let active = introspect(&broker, &held.token);
    assert_eq!(active["active"], true);
    assert_eq!(active["jti"], claims["jti"]);

    let refreshed = host.refresh(&client, &held.token).unwrap();
    let new_claims = independent_check(&broker, &refreshed.token);
    assert_ne!(new_claims["jti"], claims["jti"]);
    assert_eq!(new_claims["cnf"], claims["cnf"]);
    assert_eq!(
        new_claims["att"], claims["att"],
        "the attestation summary carries over"
    );

    // RFC 7009 revocation; then the token is inactive and cannot be refreshed.
    broker.admin(
        "POST",
        "/v1/revoke",
        Body::Form(vec![("token".into(), refreshed.token.clone())]),
    );
    assert_eq!(
        introspect(&broker, &refreshed.token),
        json!({"active": false})
    );
    let reply = host.post_refresh(&client, &refreshed.token).unwrap();
    assert_eq!((reply.status, reply.code()), (401, Some("token.revoked")));
    // The first token is still active; revoking the agent ends it too.
    assert_eq!(introspect(&broker, &held.token)["active"], true);
    broker.admin(
        "POST",
        "/v1/admin/tenants/acme/revocations",
        Body::Json(json!({"kind": "agent", "agent_id": "agent-7"})),
    );
    assert_eq!(introspect(&broker, &held.token)["active"], false);
    // …and its bootstrap secret.
    let err = host.attest(&client, &secret).unwrap_err();
    assert!(err.starts_with("401"), "{err}");

    // Metadata, metrics, readiness.
    let meta = client
        .send(
            "GET",
            "/.well-known/oauth-authorization-server",
            &[],
            Body::Empty,
        )
        .unwrap();
    assert_eq!(meta.body["issuer"], broker.url.as_str());
    assert_eq!(
        meta.body["dpop_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let metrics = client.send("GET", "/metrics", &[], Body::Empty).unwrap();
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("attest_broker_tokens_issued_total{tee=\"sev-snp\",how=\"attest\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("attest_broker_tokens_issued_total{tee=\"sev-snp\",how=\"refresh\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("attest_broker_http_request_duration_seconds_bucket"),
        "{text}"
    );
    let ready = client.send("GET", "/readyz", &[], Body::Empty).unwrap();
    assert_eq!(ready.status, 200);
    assert!(
        ready.body["warning"]
            .as_str()
            .unwrap()
            .contains("SIMULATED"),
        "dev mode says so loudly"
    );

    // Challenges are audited as counts (unauthenticated, so not a row each): the two this
    // test asked for are in the log once the broker has flushed its count, here at a clean
    // shutdown.
    let mut broker = broker;
    assert!(broker.terminate().success());
    let broker = broker.restart();
    let audit = broker.admin("GET", "/v1/admin/audit?limit=10000", Body::Empty);
    let counted: u64 = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "challenge.issued")
        .map(|e| e["details"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2, "{audit}");
}

#[test]
fn every_negative_gets_its_4xx_and_code() {
    let broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll("acme", "snp-agents", policy_for(&host), "agent-1");
    let client = broker.client();
    let expect = |reply: attest_broker::client::Reply, status: u16, code: &str| {
        assert_eq!(
            (reply.status, reply.code()),
            (status, Some(code)),
            "{}",
            reply.body
        );
        reply
    };

    // Replayed nonce.
    let nonce = host.challenge(&client).unwrap();
    let body = host.attest_body(&nonce).unwrap();
    assert!(host
        .post_attest(&client, &secret, body.clone())
        .unwrap()
        .ok());
    expect(
        host.post_attest(&client, &secret, body).unwrap(),
        409,
        "nonce.replayed",
    );

    // Evidence made for another nonce.
    let nonce = host.challenge(&client).unwrap();
    let other = host.challenge(&client).unwrap();
    let mut body = host.attest_body(&nonce).unwrap();
    body["evidence"] = host.evidence(&other, host.jwk()).unwrap();
    let r = expect(
        host.post_attest(&client, &secret, body).unwrap(),
        403,
        "evidence.rejected",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["snp.report_data"]));

    // Evidence committing to another key than the one presented.
    let mut thief = broker.host();
    thief.new_binding_key().unwrap();
    let nonce = host.challenge(&client).unwrap();
    let mut body = host.attest_body(&nonce).unwrap();
    body["evidence"] = host.evidence(&nonce, thief.jwk()).unwrap();
    expect(
        host.post_attest(&client, &secret, body).unwrap(),
        403,
        "evidence.rejected",
    );

    // A measurement not in the policy.
    let mut rogue = broker.host();
    rogue.guest.report.measurement = [0xEE; 48];
    let nonce = rogue.challenge(&client).unwrap();
    let r = expect(
        rogue
            .post_attest(&client, &secret, rogue.attest_body(&nonce).unwrap())
            .unwrap(),
        403,
        "policy.denied",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["policy.measurement"]));

    // A debug guest when debug is forbidden.
    let mut debug = broker.host();
    debug.guest.report.set_debug(true);
    let nonce = debug.challenge(&client).unwrap();
    let r = expect(
        debug
            .post_attest(&client, &secret, debug.attest_body(&nonce).unwrap())
            .unwrap(),
        403,
        "policy.denied",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["policy.debug"]));

    // TCB below the minimum: a host whose VCEK and report carry an old microcode SPL.
    let roots = attest_fixtures::amd::AmdRoots::load(&broker.data.join("simulated-amd")).unwrap();
    let mut old = attest_broker::host::SimHost::new_with_tcb(
        &roots,
        attest_fixtures::amd::TcbVersion {
            microcode: 200,
            ..attest_fixtures::amd::TcbVersion::default_for(roots.generation())
        },
    )
    .unwrap();
    old.guest.report.measurement = host.guest.report.measurement;
    let nonce = old.challenge(&client).unwrap();
    let r = expect(
        old.post_attest(&client, &secret, old.attest_body(&nonce).unwrap())
            .unwrap(),
        403,
        "policy.denied",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["policy.tcb"]));

    // A stolen bootstrap secret with evidence from an untrusted host (its own roots).
    let foreign_roots =
        attest_fixtures::amd::AmdRoots::generate(attest_fixtures::amd::Generation::Milan).unwrap();
    let mut stranger = attest_broker::host::SimHost::new(&foreign_roots).unwrap();
    stranger.guest.report.measurement = host.guest.report.measurement;
    let nonce = stranger.challenge(&client).unwrap();
    let r = expect(
        stranger
            .post_attest(&client, &secret, stranger.attest_body(&nonce).unwrap())
            .unwrap(),
        403,
        "evidence.rejected",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["snp.chain"]));

    // A token used without its key: the thief signs the DPoP proof with its own key.
    let held = host.attest(&client, &secret).unwrap();
    let r = thief.post_refresh(&client, &held.token).unwrap();
    expect(r, 401, "dpop.invalid");
    // A replayed DPoP proof.
    let url = format!("{}/v1/token/refresh", broker.url);
    let proof = host.dpop_proof("POST", &url, Some(&held.token)).unwrap();
    let auth = format!("DPoP {}", held.token);
    let send = || {
        client
            .send(
                "POST",
                "/v1/token/refresh",
                &[("authorization", &auth), ("dpop", &proof)],
                Body::Empty,
            )
            .unwrap()
    };
    assert!(send().ok());
    expect(send(), 401, "dpop.replayed");
    // A proof whose iat is far outside the window, as far as an i64 goes.
    let now = attest_broker::service::now();
    for iat in [
        i64::MIN,
        now.wrapping_add(i64::MIN),
        now - 3_600,
        now + 3_600,
        i64::MAX,
    ] {
        let proof = host
            .dpop_proof_at("POST", &url, Some(&held.token), iat)
            .unwrap();
        let r = client
            .send(
                "POST",
                "/v1/token/refresh",
                &[("authorization", &auth), ("dpop", &proof)],
                Body::Empty,
            )
            .unwrap_or_else(|e| panic!("iat {iat}: no answer: {e}"));
        expect(r, 401, "dpop.invalid");
    }

    // Bad, revoked and missing bootstrap secrets.
    let nonce = host.challenge(&client).unwrap();
    let body = host.attest_body(&nonce).unwrap();
    let forged = format!("{}x", &secret[..secret.len() - 1]);
    expect(
        host.post_attest(&client, &forged, body.clone()).unwrap(),
        401,
        "bootstrap.invalid",
    );
    expect(
        client
            .send("POST", "/v1/attest", &[], Body::Json(body.clone()))
            .unwrap(),
        401,
        "bootstrap.missing",
    );

    // Tenant A's admin acting on tenant B.
    broker.enroll("beta", "snp-agents", policy_for(&host), "agent-b");
    let scoped = broker.admin(
        "POST",
        "/v1/admin/tenants/acme/admin-credentials",
        Body::Empty,
    );
    let acme_admin = scoped["credential"].as_str().unwrap().to_string();
    let r = broker.admin_call(
        &acme_admin,
        "GET",
        "/v1/admin/tenants/beta/agents",
        Body::Empty,
    );
    expect(r, 403, "auth.tenant_scope");
    let r = broker.admin_call(
        &acme_admin,
        "POST",
        "/v1/admin/tenants/beta/revocations",
        Body::Json(json!({"kind": "tenant"})),
    );
    expect(r, 403, "auth.tenant_scope");
    let r = broker.admin_call(
        &acme_admin,
        "POST",
        "/v1/admin/tenants",
        Body::Json(json!({"id": "gamma"})),
    );
    expect(r, 403, "auth.global_only");
    let listed = broker.admin_call(&acme_admin, "GET", "/v1/admin/tenants", Body::Empty);
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "sees only its own tenant"
    );
    assert!(broker
        .admin_call(
            &acme_admin,
            "GET",
            "/v1/admin/tenants/acme/agents",
            Body::Empty
        )
        .ok());
    expect(
        broker.admin_call("aba_nope.nope", "GET", "/v1/admin/tenants", Body::Empty),
        401,
        "auth.invalid",
    );

    // Oversized, malformed and garbage requests.
    let status_line = raw_post_10mb(&broker.url, &secret);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    let r = client
        .send(
            "POST",
            "/v1/attest",
            &[("authorization", &format!("Bootstrap {secret}"))],
            Body::Raw("application/json", b"{not json".to_vec()),
        )
        .unwrap();
    expect(r, 400, "request.malformed");
    let nonce = host.challenge(&client).unwrap();
    let mut body = host.attest_body(&nonce).unwrap();
    body["evidence"]["report"] = json!("AAAA");
    let r = expect(
        host.post_attest(&client, &secret, body).unwrap(),
        403,
        "evidence.rejected",
    );
    assert_eq!(r.body["error"]["reasons"], json!(["parse.length"]));
    let mut body = host.attest_body(&host.challenge(&client).unwrap()).unwrap();
    body["evidence"]["type"] = json!("quantum");
    expect(
        host.post_attest(&client, &secret, body).unwrap(),
        400,
        "request.malformed",
    );
    let mut body = host.attest_body(&host.challenge(&client).unwrap()).unwrap();
    body["binding_key"]["crv"] = json!("P-384");
    expect(
        host.post_attest(&client, &secret, body).unwrap(),
        400,
        "binding_key.invalid",
    );
    let mut body = host.attest_body(&[7; 32]).unwrap();
    body["nonce"] = json!(jose::b64(&[7; 32]));
    expect(
        host.post_attest(&client, &secret, body).unwrap(),
        400,
        "nonce.unknown",
    );
    expect(
        client.send("GET", "/v1/nowhere", &[], Body::Empty).unwrap(),
        404,
        "not_found",
    );
    let r = client
        .send(
            "POST",
            "/v1/token/refresh",
            &[("authorization", "DPoP x.y.z"), ("dpop", "a.b.c")],
            Body::Empty,
        )
        .unwrap();
    expect(r, 401, "token.invalid");

    // Nothing above was a 5xx, and the broker is still serving.
    assert_eq!(
        client
            .send("GET", "/healthz", &[], Body::Empty)
            .unwrap()
            .status,
        200
    );
    let metrics = client.send("GET", "/metrics", &[], Body::Empty).unwrap();
    let text = metrics.body.as_str().unwrap();
    assert!(!text.lines().any(|l| l.starts_with("attest_broker_http_requests_total") && l.contains("status=\"5")), "{text}");
    assert!(
        text.contains("attest_broker_attestations_denied_total{reason=\"policy.measurement\"} 1"),
        "{text}"
    );

    // The audit log has the denials with their reasons, and no secret or token.
    let audit = broker.admin("GET", "/v1/admin/audit?limit=10000", Body::Empty);
    let text = audit.to_string();
    assert!(
        text.contains("policy.debug")
            && text.contains("snp.chain")
            && text.contains("nonce.replayed")
    );
    assert!(!text.contains(&secret) && !text.contains(&held.token) && !text.contains(&acme_admin));
    let logs = broker.logs();
    assert!(!logs.contains(&secret) && !logs.contains(&held.token) && !logs.contains(&acme_admin));
    assert!(!logs.contains(&broker.admin_credential()));
}

/// POSTs a 10 MB body over a raw socket. The broker answers 413 as soon as it sees the length,
/// and may close before the body is sent, so write errors are expected and ignored.
fn raw_post_10mb(url: &str, secret: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let len = 10 * 1024 * 1024;
    let head = format!(
        "POST /v1/attest HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bootstrap {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'{'; 64 * 1024];
    for _ in 0..len / chunk.len() {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn key_rotation_overlaps_and_bootstrap_rotation_revokes() {
    let broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll("acme", "snp-agents", policy_for(&host), "agent-1");
    let client = broker.client();
    let old = host.attest(&client, &secret).unwrap();
    let old_kid = jsonwebtoken::decode_header(&old.token)
        .unwrap()
        .kid
        .unwrap();

    // Rotate: new tokens use the new key; the old key stays published while its tokens live.
    let rotated = broker.admin("POST", "/v1/admin/keys/rotate", Body::Empty);
    let new_kid = rotated["active_kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let new = host.attest(&client, &secret).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new.token)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    independent_check(&broker, &old.token);
    independent_check(&broker, &new.token);
    assert_eq!(introspect(&broker, &old.token)["active"], true);
    // The active key cannot be revoked; the retired one can, and its tokens go inactive.
    let r = broker.admin_call(
        &broker.admin_credential(),
        "POST",
        &format!("/v1/admin/keys/{new_kid}/revoke"),
        Body::Empty,
    );
    assert_eq!((r.status, r.code()), (409, Some("key.active")));
    broker.admin(
        "POST",
        &format!("/v1/admin/keys/{old_kid}/revoke"),
        Body::Empty,
    );
    assert_eq!(introspect(&broker, &old.token)["active"], false);
    assert_eq!(introspect(&broker, &new.token)["active"], true);
    let jwks = client
        .send("GET", "/.well-known/jwks.json", &[], Body::Empty)
        .unwrap();
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        vec![new_kid.as_str()],
        "a revoked key leaves the JWKS"
    );

    // Bootstrap rotation: the new secret works, the old one is revoked.
    let rotated = broker.admin(
        "POST",
        "/v1/admin/tenants/acme/agents/agent-1/bootstrap-credentials",
        Body::Json(json!({"rotate": true})),
    );
    let fresh = rotated["secret"].as_str().unwrap();
    assert!(host.attest(&client, fresh).is_ok());
    let nonce = host.challenge(&client).unwrap();
    let r = host
        .post_attest(&client, &secret, host.attest_body(&nonce).unwrap())
        .unwrap();
    assert_eq!((r.status, r.code()), (401, Some("bootstrap.revoked")));
    // Expiring bootstrap secrets.
    let short = broker.admin(
        "POST",
        "/v1/admin/tenants/acme/agents/agent-1/bootstrap-credentials",
        Body::Json(json!({"ttl_secs": 1})),
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let nonce = host.challenge(&client).unwrap();
    let r = host
        .post_attest(
            &client,
            short["secret"].as_str().unwrap(),
            host.attest_body(&nonce).unwrap(),
        )
        .unwrap();
    assert_eq!((r.status, r.code()), (401, Some("bootstrap.expired")));
}

/// The signal handlers are installed before the broker prints that it is listening: a SIGTERM
/// sent the moment a supervisor sees that line still takes the graceful path (exit 0, "shutting
/// down" logged), every time.
#[test]
fn sigterm_right_after_readiness_is_graceful() {
    let mut original = Broker::start();
    assert!(original.terminate().success());
    for round in 0..6 {
        let mut again = original.restart();
        let status = again.terminate();
        assert!(status.success(), "round {round}: {status:?}");
    }
    assert_eq!(original.logs().matches("shutting down").count(), 7);
}

/// Opens a connection to `url`'s host and sends `bytes` (a partial request).
fn raw_partial(url: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads until the server closes; what it sent (empty when it closed without answering).
fn read_until_closed(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the broker neither answered nor closed: {e}"),
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn slow_and_idle_clients_are_cut_off_and_cannot_exhaust_connections() {
    let broker = Broker::start_with_config(
        "[limits]\nclient_timeout_secs = 1\nmax_connections = 6\nrequest_timeout_secs = 30\n",
    );
    let started = std::time::Instant::now();
    // Four connections that never finish their headers (slowloris), one that sends nothing,
    // and one whose body never arrives: the cap of six is reached.
    let mut stalled: Vec<_> = (0..4)
        .map(|_| raw_partial(&broker.url, b"GET /hea"))
        .collect();
    stalled.push(raw_partial(&broker.url, b""));
    let mut slow_body = raw_partial(
        &broker.url,
        b"POST /v1/introspect HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"tok",
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A seventh is closed on arrival, without an answer.
    let mut seventh = raw_partial(&broker.url, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(read_until_closed(&mut seventh), "");
    // After the client timeout the stalled connections are closed without an answer (hyper
    // may answer a half-sent request 408), and the body that never came gets 408.
    for s in &mut stalled {
        let answer = read_until_closed(s);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    let answer = read_until_closed(&mut slow_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request.timeout"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    // The slots are free again: the broker serves, and counted the refused connection.
    let client = broker.client();
    let health = client.send("GET", "/healthz", &[], Body::Empty).unwrap();
    assert_eq!(health.status, 200);
    let metrics = client.send("GET", "/metrics", &[], Body::Empty).unwrap();
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("attest_broker_connections_refused_total ") && !l.ends_with(" 0")
        ),
        "{text}"
    );
    let logs = broker.logs();
    assert!(logs.contains("connections closed on arrival"), "{logs}");
    assert!(!logs.contains("panicked"));
}

#[test]
fn a_stored_policy_too_large_for_tokens_gets_403_not_a_token_or_a_5xx() {
    let mut broker = Broker::start();
    let host = broker.host();
    let secret = broker.enroll("acme", "big", policy_for(&host), "agent-1");
    // Today such a policy is refused at put...
    let mut big = policy_for(&host);
    big["budget"] = json!({"note": "x".repeat(9000)});
    let reply = broker.admin_call(
        &broker.admin_credential(),
        "PUT",
        "/v1/admin/tenants/acme/policies/big",
        Body::Json(big.clone()),
    );
    assert_eq!((reply.status, reply.code()), (400, Some("policy.invalid")));
    // ...but an older broker accepted it: store it as one would have, then restart.
    assert!(broker.terminate().success());
    let db = rusqlite::Connection::open(broker.data.join("broker.db")).unwrap();
    db.execute(
        "INSERT INTO policies (tenant, class, version, body, created_at) VALUES ('acme', 'big', 99, ?1, 0)",
        [big.to_string()],
    )
    .unwrap();
    drop(db);
    let addr = broker.url.trim_start_matches("http://").to_string();
    let mut broker = Broker::start_at(&broker.data.clone(), broker.log.clone(), &addr);
    let client = broker.client();
    let nonce = host.challenge(&client).unwrap();
    let reply = host
        .post_attest(&client, &secret, host.attest_body(&nonce).unwrap())
        .unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.code(), Some("policy.token_too_large"));
    assert!(broker.alive());
}
