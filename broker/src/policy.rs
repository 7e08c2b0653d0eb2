//! Policy, first cut: per (tenant, agent class), versioned, enforce or shadow. Appraisal
//! compares verified claims with reference values and lists every check that passed or failed.

use std::collections::BTreeMap;

use attest_verifiers::nitro::NitroClaims;
use attest_verifiers::snp::SnpClaims;
use attest_verifiers::tpm::TpmClaims;
use attest_verifiers::Claims;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lowest token lifetime a policy may set, in seconds.
pub const MIN_TTL_SECS: u64 = 60;
/// Highest token lifetime a policy may set, in seconds.
pub const MAX_TTL_SECS: u64 = 3600;

/// Longest tenant or agent id (the admin API refuses longer ones).
pub const MAX_ID_BYTES: usize = 64;
/// Room for the expanded `scope` claim.
const MAX_SCOPE_BYTES: usize = 2048;
/// Room for the `budget` claim, as JSON.
const MAX_BUDGET_BYTES: usize = 1024;
/// Audiences a policy may list, and the length of each.
const MAX_AUDIENCES: usize = 16;
const MAX_AUDIENCE_BYTES: usize = 256;

/// Enforce (deny on failure) or shadow (issue, but record what enforcement would have done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Failed checks deny.
    #[default]
    Enforce,
    /// Failed checks are recorded as `shadow-deny`; the token is issued.
    Shadow,
}

/// Minimum TCB security patch levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// Bootloader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// TEE SPL.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// Microcode SPL.
    #[serde(default)]
    pub microcode: u8,
    /// FMC SPL (Turin).
    #[serde(default)]
    pub fmc: u8,
}

/// Reference values for SEV-SNP evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpPolicy {
    /// Allowed launch measurements (hex, 48 bytes). Empty: any measurement (not recommended).
    #[serde(default)]
    pub measurements: Vec<String>,
    /// Minimum reported TCB.
    #[serde(default)]
    pub min_tcb: Option<MinTcb>,
    /// Whether a guest whose policy allows debugging may get a token.
    #[serde(default)]
    pub allow_debug: bool,
    /// Highest VMPL the report may come from (0 is the most privileged).
    #[serde(default)]
    pub max_vmpl: Option<u32>,
    /// Allowed HOST_DATA values (hex). Empty: any.
    #[serde(default)]
    pub host_data: Vec<String>,
}

/// Reference values for AWS Nitro Enclaves documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NitroPolicy {
    /// Allowed values per PCR index (`"0"`, `"1"`, `"2"`, `"8"`…; hex, 48 bytes). Every listed
    /// index must match one of its values. Empty: any PCRs (not recommended).
    #[serde(default)]
    pub pcrs: BTreeMap<String, Vec<String>>,
    /// Whether a debug-mode enclave (PCR0/1/2 zero) may get a token.
    #[serde(default)]
    pub allow_debug: bool,
}

/// Reference values for TPM 2.0 quotes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmPolicy {
    /// Allowed values per bank (`"sha256"`…) and PCR index (`"0"`…`"23"`), hex. Every listed
    /// PCR must have been quoted with one of its values.
    #[serde(default)]
    pub pcrs: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Require an event log that replays to the quote and shows Secure Boot enabled.
    #[serde(default)]
    pub require_secure_boot: bool,
}

/// A policy document, stored as JSON and versioned per (tenant, class).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Enforce or shadow.
    #[serde(default)]
    pub mode: Mode,
    /// SEV-SNP reference values; absent: SEV-SNP evidence is not accepted.
    #[serde(default)]
    pub sev_snp: Option<SnpPolicy>,
    /// TPM 2.0 reference values; absent: TPM quotes are not accepted.
    #[serde(default)]
    pub tpm: Option<TpmPolicy>,
    /// AWS Nitro reference values; absent: Nitro documents are not accepted.
    #[serde(default)]
    pub aws_nitro: Option<NitroPolicy>,
    /// Scopes granted, with `{agent_id}` and `{tenant}` templates.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences a token may be issued for. The first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Token lifetime in seconds (bounded to 60–3600; default 900).
    #[serde(default = "default_ttl")]
    pub token_ttl_secs: u64,
    /// How long after attestation a token may be refreshed without attesting again.
    #[serde(default = "default_attestation_age")]
    pub max_attestation_age_secs: u64,
    /// Accept evidence that chains to caller-supplied (simulated) roots rather than a vendor's.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Extra claims copied into tokens (budgets, capabilities).
    #[serde(default)]
    pub budget: Map<String, Value>,
}

fn default_ttl() -> u64 {
    900
}

fn default_attestation_age() -> u64 {
    3600
}

/// Why a policy document is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Parses and validates a policy document.
    pub fn from_json(value: &Value) -> Result<Self, PolicyError> {
        let policy = Self::from_stored(value)?;
        policy.validate_token_claims()?;
        Ok(policy)
    }

    /// Parses a policy the store already holds. The bounds on what goes into tokens are not
    /// applied: a policy accepted before they existed keeps loading (its attestations get 403
    /// `policy.token_too_large` if a token would be too large), instead of failing every
    /// request of its agents.
    pub fn from_stored(value: &Value) -> Result<Self, PolicyError> {
        let policy: Policy =
            serde_json::from_value(value.clone()).map_err(|e| PolicyError(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.token_ttl_secs) {
            return Err(PolicyError(format!(
                "token_ttl_secs must be between {MIN_TTL_SECS} and {MAX_TTL_SECS}"
            )));
        }
        if let Some(snp) = &self.sev_snp {
            for m in &snp.measurements {
                if hex::decode(m).map(|b| b.len()) != Ok(48) {
                    return Err(PolicyError(format!(
                        "measurement {m:?} is not 48 bytes of hex"
                    )));
                }
            }
            for h in &snp.host_data {
                if hex::decode(h).map(|b| b.len()) != Ok(32) {
                    return Err(PolicyError(format!(
                        "host_data {h:?} is not 32 bytes of hex"
                    )));
                }
            }
        }
        if let Some(tpm) = &self.tpm {
            for (bank, indices) in &tpm.pcrs {
                let len = match bank.as_str() {
                    "sha1" => 20,
                    "sha256" => 32,
                    "sha384" => 48,
                    "sha512" => 64,
                    other => return Err(PolicyError(format!("unknown PCR bank {other:?}"))),
                };
                for (index, values) in indices {
                    if index.parse::<u8>().map_or(true, |i| i > 23) {
                        return Err(PolicyError(format!("PCR index {index:?} is not 0-23")));
                    }
                    if values
                        .iter()
                        .any(|v| hex::decode(v).map(|b| b.len()) != Ok(len))
                    {
                        return Err(PolicyError(format!(
                            "{bank} PCR{index}: values must be {len} bytes of hex"
                        )));
                    }
                }
            }
        }
        if let Some(nitro) = &self.aws_nitro {
            for (index, values) in &nitro.pcrs {
                if index.parse::<u8>().map_or(true, |i| i > 31) {
                    return Err(PolicyError(format!("PCR index {index:?} is not 0-31")));
                }
                for v in values {
                    if hex::decode(v).map(|b| b.len()) != Ok(48) {
                        return Err(PolicyError(format!(
                            "PCR{index} value {v:?} is not 48 bytes of hex"
                        )));
                    }
                }
            }
        }
        if self.audiences.is_empty() {
            return Err(PolicyError(
                "audiences must list at least one audience".into(),
            ));
        }
        Ok(())
    }

    /// What the policy copies into tokens must keep every token well under the size the
    /// broker accepts back (`jose::MAX_JWS_LEN`), or its tokens could not be refreshed or
    /// introspected; and a scope is one RFC 6749 scope-token (no space to split it into two).
    fn validate_token_claims(&self) -> Result<(), PolicyError> {
        if self.audiences.len() > MAX_AUDIENCES
            || self
                .audiences
                .iter()
                .any(|a| a.is_empty() || a.len() > MAX_AUDIENCE_BYTES)
        {
            return Err(PolicyError(format!(
                "audiences: at most {MAX_AUDIENCES}, each 1-{MAX_AUDIENCE_BYTES} bytes"
            )));
        }
        let scope_char = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || !s.chars().all(scope_char))
        {
            let shown: String = bad.chars().take(64).collect();
            return Err(PolicyError(format!(
                "scope {shown:?} is not an RFC 6749 scope-token (printable ASCII, no space, quote or backslash)"
            )));
        }
        // Worst case: ids are at most 64 bytes (admin API), templates are 8-10 bytes.
        let expanded: usize = self
            .scopes
            .iter()
            .map(|s| {
                s.len()
                    + s.matches("{agent_id}").count() * (MAX_ID_BYTES - "{agent_id}".len())
                    + s.matches("{tenant}").count() * (MAX_ID_BYTES - "{tenant}".len())
                    + 1
            })
            .sum();
        if expanded > MAX_SCOPE_BYTES {
            return Err(PolicyError(format!(
                "scopes may fill at most {MAX_SCOPE_BYTES} bytes of a token (with 64-byte ids in the templates); these fill up to {expanded}"
            )));
        }
        let budget = serde_json::to_vec(&self.budget).map_or(usize::MAX, |b| b.len());
        if budget > MAX_BUDGET_BYTES {
            return Err(PolicyError(format!(
                "budget is {budget} bytes of JSON; at most {MAX_BUDGET_BYTES}"
            )));
        }
        Ok(())
    }

    /// The scopes with templates filled in.
    pub fn scopes_for(&self, tenant: &str, agent_id: &str) -> Vec<String> {
        self.scopes
            .iter()
            .map(|s| {
                s.replace("{agent_id}", agent_id)
                    .replace("{tenant}", tenant)
            })
            .collect()
    }
}

/// One check of an appraisal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable reason code, e.g. `policy.measurement`.
    pub code: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
}

/// The outcome of an appraisal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appraisal {
    /// Every check, passed and failed.
    pub checks: Vec<Check>,
}

impl Appraisal {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Codes of failed checks.
    pub fn failures(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.code)
            .collect()
    }

    fn check(&mut self, code: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            code,
            passed,
            detail: detail.into(),
        });
    }
}

/// Appraises verified claims against `policy`.
pub fn appraise(policy: &Policy, claims: &Claims) -> Appraisal {
    let mut a = Appraisal { checks: Vec::new() };
    match claims {
        Claims::SevSnp(c) => match &policy.sev_snp {
            Some(p) => appraise_snp(p, policy.allow_simulated, c, &mut a),
            None => a.check(
                "policy.evidence_kind",
                false,
                "policy does not accept sev-snp evidence",
            ),
        },
        Claims::Tpm(c) => match &policy.tpm {
            Some(p) => appraise_tpm(p, c, &mut a),
            None => a.check(
                "policy.evidence_kind",
                false,
                "policy does not accept tpm evidence",
            ),
        },
        Claims::AwsNitro(c) => match &policy.aws_nitro {
            Some(p) => appraise_nitro(p, policy.allow_simulated, c, &mut a),
            None => a.check(
                "policy.evidence_kind",
                false,
                "policy does not accept aws-nitro evidence",
            ),
        },
        other => a.check(
            "policy.evidence_kind",
            false,
            format!("policy does not accept {} evidence", other.tee()),
        ),
    }
    a
}

fn appraise_snp(p: &SnpPolicy, allow_simulated: bool, c: &SnpClaims, a: &mut Appraisal) {
    a.check(
        "policy.vendor_root",
        c.vendor_root || allow_simulated,
        if c.vendor_root {
            "chain ends at AMD's pinned root".to_string()
        } else {
            format!("chain ends at a simulated root (allow_simulated = {allow_simulated})")
        },
    );
    let measurement = c.measurement.to_string();
    a.check(
        "policy.measurement",
        p.measurements.is_empty()
            || p.measurements
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&measurement)),
        format!("measurement {measurement}"),
    );
    a.check(
        "policy.debug",
        p.allow_debug || !c.debug,
        format!("debug {} (allowed: {})", c.debug, p.allow_debug),
    );
    if let Some(max) = p.max_vmpl {
        a.check(
            "policy.vmpl",
            c.vmpl <= max,
            format!("vmpl {} (max {max})", c.vmpl),
        );
    }
    if !p.host_data.is_empty() {
        let host = c.host_data.to_string();
        a.check(
            "policy.host_data",
            p.host_data.iter().any(|h| h.eq_ignore_ascii_case(&host)),
            format!("host_data {host}"),
        );
    }
    if let Some(min) = p.min_tcb {
        let t = c.reported_tcb;
        let ok = t.bootloader >= min.bootloader
            && t.tee >= min.tee
            && t.snp >= min.snp
            && t.microcode >= min.microcode
            && t.fmc.unwrap_or(u8::MAX) >= min.fmc;
        a.check(
            "policy.tcb",
            ok,
            format!(
                "reported bl {} tee {} snp {} ucode {} (min bl {} tee {} snp {} ucode {})",
                t.bootloader,
                t.tee,
                t.snp,
                t.microcode,
                min.bootloader,
                min.tee,
                min.snp,
                min.microcode
            ),
        );
    }
}

fn appraise_tpm(p: &TpmPolicy, c: &TpmClaims, a: &mut Appraisal) {
    for (bank, indices) in &p.pcrs {
        let quoted = c
            .pcrs
            .iter()
            .find(|(alg, _)| alg.name() == bank.as_str())
            .map(|(_, v)| v);
        for (index, allowed) in indices {
            let actual = index
                .parse::<u8>()
                .ok()
                .and_then(|i| quoted.and_then(|q| q.get(&i)))
                .map(|v| v.to_string());
            let ok = actual
                .as_deref()
                .is_some_and(|v| allowed.iter().any(|x| x.eq_ignore_ascii_case(v)));
            a.check(
                "policy.pcr",
                ok,
                format!(
                    "{bank} PCR{index} {}",
                    actual.as_deref().unwrap_or("not quoted")
                ),
            );
        }
    }
    if p.require_secure_boot {
        let secure_boot = c.event_log.as_ref().and_then(|l| l.secure_boot);
        a.check(
            "policy.secure_boot",
            secure_boot == Some(true),
            format!("secure boot {secure_boot:?} (from the replayed event log)"),
        );
    }
}

fn appraise_nitro(p: &NitroPolicy, allow_simulated: bool, c: &NitroClaims, a: &mut Appraisal) {
    a.check(
        "policy.vendor_root",
        c.vendor_root || allow_simulated,
        if c.vendor_root {
            "chain ends at the pinned AWS Nitro root".to_string()
        } else {
            format!("chain ends at a simulated root (allow_simulated = {allow_simulated})")
        },
    );
    a.check(
        "policy.debug",
        p.allow_debug || !c.debug,
        format!("debug enclave {} (allowed: {})", c.debug, p.allow_debug),
    );
    for (index, allowed) in &p.pcrs {
        let actual = index
            .parse::<u8>()
            .ok()
            .and_then(|i| c.pcr(i))
            .map(hex::encode);
        let ok = actual
            .as_deref()
            .is_some_and(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v)));
        a.check(
            "policy.pcr",
            ok,
            format!("PCR{index} {}", actual.as_deref().unwrap_or("absent")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok =
            serde_json::json!({"audiences": ["a"], "sev_snp": {"measurements": ["00".repeat(48)]}});
        assert!(Policy::from_json(&ok).is_ok());
        let ttl = serde_json::json!({"audiences": ["a"], "token_ttl_secs": 7200});
        assert!(Policy::from_json(&ttl).is_err());
        let unknown = serde_json::json!({"audiences": ["a"], "surprise": 1});
        assert!(Policy::from_json(&unknown).is_err());
        let short = serde_json::json!({"audiences": ["a"], "sev_snp": {"measurements": ["00"]}});
        assert!(Policy::from_json(&short).is_err());
        assert!(Policy::from_json(&serde_json::json!({})).is_err());
    }

    #[test]
    fn what_goes_into_tokens_is_bounded() {
        let with = |extra: serde_json::Value| {
            let mut p = serde_json::json!({"audiences": ["a"]});
            if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
                p.extend(extra.clone());
            }
            Policy::from_json(&p)
        };
        assert!(with(serde_json::json!({"scopes": ["tools:{agent_id}:run"]})).is_ok());
        // A space would make one scope two.
        assert!(with(serde_json::json!({"scopes": ["read admin"]})).is_err());
        assert!(with(serde_json::json!({"scopes": [""]})).is_err());
        assert!(with(serde_json::json!({"scopes": ["a\"b"]})).is_err());
        // 200 KB of scopes or budget would mint tokens the broker cannot read back.
        assert!(with(serde_json::json!({"scopes": ["x".repeat(200_000)]})).is_err());
        let many: Vec<String> = (0..100).map(|i| format!("s{i}:{{agent_id}}")).collect();
        let err = with(serde_json::json!({"scopes": many})).unwrap_err();
        assert!(err.0.contains("at most 2048"), "{err}");
        assert!(with(serde_json::json!({"budget": {"k": "v".repeat(2000)}})).is_err());
        assert!(with(serde_json::json!({"budget": {"max_tool_calls": 100}})).is_ok());
        assert!(with(serde_json::json!({"audiences": ["a".repeat(300)]})).is_err());
        let auds: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
        assert!(with(serde_json::json!({"audiences": auds})).is_err());
        // A policy stored before these bounds still loads.
        let old =
            serde_json::json!({"audiences": ["a"], "scopes": ["read admin", "x".repeat(5000)]});
        assert!(Policy::from_json(&old).is_err());
        assert!(Policy::from_stored(&old).is_ok());
        assert!(Policy::from_stored(&serde_json::json!({"audiences": []})).is_err());
    }

    #[test]
    fn scope_templates() {
        let p = Policy::from_json(&serde_json::json!({
            "audiences": ["a"], "scopes": ["tools:{agent_id}:run", "tenant:{tenant}"]
        }))
        .unwrap();
        assert_eq!(p.scopes_for("t1", "a1"), vec!["tools:a1:run", "tenant:t1"]);
    }
}
