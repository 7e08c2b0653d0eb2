//! A TPM 2.0, driven through `tss-esapi` 7.x, producing the evidence `attest_verifiers::tpm`
//! verifies.
//!
//! ```text
//! Endorsement hierarchy                      Owner hierarchy
//!   EK (primary, TCG template) ─┬─ AK          SRK (primary, ECC P-256 storage key)
//!     └─ certificate in NV      │  (restricted   └─ binding key (P-256 ECDSA-SHA256,
//!                               │   signing)         fixedTPM, non-exportable)
//!   TPM2_ActivateCredential ◀───┘
//!   (AK enrollment)         TPM2_Quote (PCRs)   TPM2_Certify(binding key)   TPM2_Sign (ES256)
//! ```
//!
//! - [`Tpm::open`] with a TCTI string ([`Tcti`]: `device:/dev/tpmrm0`,
//!   `swtpm:host=127.0.0.1,port=2321`, `tabrmd`).
//! - [`Tpm::create_ek`] (TCG EK Credential Profile templates) and [`Tpm::ek_certificate`]
//!   (from its NV index, when the manufacturer provisioned one).
//! - [`Tpm::create_ak`]: an AK under the EK (RSA-2048 RSASSA-SHA256 or ECC P-256
//!   ECDSA-SHA256, restricted signing, fixedTPM, fixedParent).
//! - [`Tpm::pcr_extend`], [`Tpm::pcr_read`] and [`Tpm::quote`], which returns the raw
//!   TPMS_ATTEST, the TPMT_SIGNATURE and the PCR values the quote covers.
//! - [`Tpm::create_binding_key`], [`Tpm::certify`] and [`Tpm::sign_digest`]: the
//!   token-binding key, certified by the AK, signing DPoP proofs (ES256, r‖s).
//! - [`Tpm::activate_credential`]: TPM2_ActivateCredential of the broker's
//!   `attest_verifiers::tpm::make_credential` output, in an EK policy session.
//!
//! Objects are kept as saved contexts (TPM2_ContextSave) and loaded only for the command that
//! uses them, then flushed: a TPM without a resource manager (swtpm, `/dev/tpm0`) has room
//! for three loaded objects, and ActivateCredential alone needs two. Saved object contexts
//! stay valid until the TPM is reset (a reboot); after one, create the keys again.
//!
//! Public areas are exported as the marshalled `TPMT_PUBLIC` ([`ObjectPublic::tpmt_public`])
//! and `TPM2B_PUBLIC` ([`ObjectPublic::tpm2b_public`]). The attestation and signature bytes
//! are `tss-esapi`'s re-marshalling of what the TPM returned (7.x keeps no raw buffer); a
//! re-marshalling that differed from what the TPM signed would fail every signature check,
//! which the swtpm tests check with our verifier and with `tpm2_checkquote`.

mod error;
mod policy;
mod tcti;

use std::collections::BTreeSet;
use std::convert::TryFrom;

use attest_verifiers::tpm::{self as verify, Attested, HashAlg, PcrValues};
use tss_esapi::abstraction::{ak, ek, AsymmetricAlgorithmSelection, DefaultKey};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::{CapabilityType, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{
    HashingAlgorithm, PublicAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, Digest, DigestList, DigestValues, EccPoint, EccScheme, EncryptedSecret,
    HashScheme, HashcheckTicket, IdObject, PcrSelectionList, Public, PublicBuilder,
    PublicEccParametersBuilder, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::{TPML_PCR_SELECTION, TPMT_TK_HASHCHECK};
use tss_esapi::utils::TpmsContext;
use tss_esapi::Context;
use zeroize::Zeroizing;

pub use error::{TpmError, Tss2ResponseCodeKind};
pub use tcti::{Tcti, DEFAULT_DEVICE, DEFAULT_SIMULATOR_PORT};

use error::TssResultExt;
use policy::EkPolicy;

/// PCRs a PC Client TPM has (TCG PC Client Platform TPM Profile: 24).
pub const PCR_COUNT: u8 = 24;
/// Largest qualifying data TPM2_Quote and TPM2_Certify take (`TPM2B_DATA`: a `TPMT_HA`,
/// so the largest digest, SHA-512).
pub const MAX_QUALIFYING_DATA: usize = 64;
/// TPM2_Quote attempts before giving up when the PCRs keep changing between reading them and
/// quoting them.
const QUOTE_ATTEMPTS: usize = 3;

/// `TPM_ST_HASHCHECK` and `TPM_RH_NULL`: the NULL ticket TPM2_Sign takes for digests of
/// data the TPM did not hash itself (allowed for unrestricted keys, Part 3, 20.2).
const TPM_ST_HASHCHECK: u16 = 0x8024;
const TPM_RH_NULL: u32 = 0x4000_0007;

/// An EK template (TCG EK Credential Profile 2.5, B.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EkKind {
    /// Template L-1: RSA 2048, SHA-256, AES-128-CFB, PolicyA. Certificate at `0x01C00002`.
    Rsa2048,
    /// Template L-2: ECC NIST P-256, SHA-256, AES-128-CFB, PolicyA. Certificate at
    /// `0x01C0000A`.
    EccP256,
    /// Template H-3: ECC NIST P-384, SHA-384, AES-256-CFB, PolicyB. Certificate at
    /// `0x01C00016` (swtpm provisions this one rather than P-256).
    EccP384,
}

impl EkKind {
    /// The NV index of this EK's certificate (EK Credential Profile 2.5, 2.2.1.4–5).
    pub fn certificate_nv_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0002,
            EkKind::EccP256 => 0x01c0_000a,
            EkKind::EccP384 => 0x01c0_0016,
        }
    }

    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
        }
    }
}

/// An attestation key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AkKind {
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2048,
    /// ECC NIST P-256, ECDSA with SHA-256.
    EccP256,
}

/// The public part of a TPM object, in the wire forms verifiers take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPublic {
    tpmt: Vec<u8>,
    name: Vec<u8>,
}

impl ObjectPublic {
    fn new(public: &Public, name: &[u8], what: &'static str) -> Result<Self, TpmError> {
        let tpmt = public.marshall().tss("marshalling TPMT_PUBLIC")?;
        if tpmt.len() > usize::from(u16::MAX) {
            return Err(TpmError::unexpected(
                what,
                "public area larger than a TPM2B",
            ));
        }
        Ok(ObjectPublic {
            tpmt,
            name: name.to_vec(),
        })
    }

    /// The marshalled `TPMT_PUBLIC` (what `attest_verifiers::tpm::Public::parse` takes and
    /// what the Name is computed over).
    pub fn tpmt_public(&self) -> &[u8] {
        &self.tpmt
    }

    /// The marshalled `TPM2B_PUBLIC`: a big-endian u16 size, then the `TPMT_PUBLIC` (what
    /// `tpm2_readpublic -o` writes and `AttestationKey::parse` detects).
    pub fn tpm2b_public(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tpmt.len() + 2);
        // ObjectPublic::new checked the length fits.
        out.extend(
            u16::try_from(self.tpmt.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.tpmt);
        out
    }

    /// The object's Name as the TPM reported it: `nameAlg ‖ H(TPMT_PUBLIC)`.
    pub fn name(&self) -> &[u8] {
        &self.name
    }
}

/// An endorsement key, created from its template.
#[derive(Debug, Clone)]
pub struct Ek {
    kind: EkKind,
    public: ObjectPublic,
    name_alg: HashAlg,
    policy: EkPolicy,
    saved: TpmsContext,
}

impl Ek {
    /// Which template.
    pub fn kind(&self) -> EkKind {
        self.kind
    }

    /// Its public area and Name.
    pub fn public(&self) -> &ObjectPublic {
        &self.public
    }
}

/// An attestation key: a restricted signing key under the EK.
#[derive(Debug, Clone)]
pub struct Ak {
    kind: AkKind,
    public: ObjectPublic,
    saved: TpmsContext,
}

impl Ak {
    /// Its algorithm.
    pub fn kind(&self) -> AkKind {
        self.kind
    }

    /// Its public area and Name.
    pub fn public(&self) -> &ObjectPublic {
        &self.public
    }
}

/// The token-binding key: an unrestricted P-256 ECDSA-SHA256 signing key that cannot leave
/// the TPM (`fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign`).
#[derive(Debug, Clone)]
pub struct BindingKey {
    public: ObjectPublic,
    point: [u8; 65],
    saved: TpmsContext,
}

impl BindingKey {
    /// Its public area and Name.
    pub fn public(&self) -> &ObjectPublic {
        &self.public
    }

    /// The public key as an uncompressed SEC 1 point (`04 ‖ x ‖ y`), for a JWK and for
    /// verifying its ES256 signatures.
    pub fn public_point(&self) -> &[u8; 65] {
        &self.point
    }
}

/// A TPM2_Quote and the PCR values it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST, as signed.
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// The values of the quoted PCRs, checked to hash to the quote's pcrDigest.
    pub pcrs: PcrValues,
}

impl Quote {
    /// The PCR values as JSON keyed by bank (`{"sha256": {"16": "hex…"}}`), a form
    /// `PcrValues::from_json` reads.
    pub fn pcrs_json(&self) -> String {
        pcr_values_json(&self.pcrs)
    }
}

/// A TPM2_Certify of one key by an AK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    /// The marshalled TPMS_ATTEST (`TPM_ST_ATTEST_CERTIFY`), as signed.
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE.
    pub signature: Vec<u8>,
}

/// PCR values as JSON keyed by bank name and decimal index, values in hex.
pub fn pcr_values_json(values: &PcrValues) -> String {
    let banks: serde_json::Map<String, serde_json::Value> = values
        .banks()
        .iter()
        .map(|(bank, pcrs)| {
            let pcrs: serde_json::Map<String, serde_json::Value> = pcrs
                .iter()
                .map(|(i, v)| (i.to_string(), serde_json::Value::String(hex::encode(v))))
                .collect();
            (bank.name().to_string(), serde_json::Value::Object(pcrs))
        })
        .collect();
    serde_json::Value::Object(banks).to_string()
}

/// A connection to one TPM.
pub struct Tpm {
    ctx: Context,
    tcti: Tcti,
    srk: Option<TpmsContext>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm").field("tcti", &self.tcti).finish()
    }
}

impl Tpm {
    /// Connects through a TCTI string (see [`Tcti`]).
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        Self::open_tcti(Tcti::parse(tcti)?)
    }

    /// Connects through a parsed TCTI.
    pub fn open_tcti(tcti: Tcti) -> Result<Self, TpmError> {
        let ctx = Context::new(tcti.name_conf()?).map_err(|e| TpmError::Tcti {
            tcti: tcti.to_string(),
            detail: format!("cannot open: {e}"),
        })?;
        Ok(Tpm {
            ctx,
            tcti,
            srk: None,
        })
    }

    /// The TCTI this connection uses.
    pub fn tcti(&self) -> &Tcti {
        &self.tcti
    }

    /// Creates the EK from its TCG template in the endorsement hierarchy (deterministic: the
    /// same TPM always gives the same EK for a template).
    pub fn create_ek(&mut self, kind: EkKind) -> Result<Ek, TpmError> {
        let handle = ek::create_ek_object_2(&mut self.ctx, kind.selection(), DefaultKey)
            .tss("TPM2_CreatePrimary (EK)")?;
        let result = (|| {
            let (public, name, _) = self.ctx.read_public(handle).tss("TPM2_ReadPublic (EK)")?;
            let public = ObjectPublic::new(&public, name.value(), "TPM2_CreatePrimary (EK)")?;
            let parsed = verify::Public::parse(public.tpmt_public()).map_err(|e| {
                TpmError::unexpected("TPM2_CreatePrimary (EK)", format!("EK public area: {e}"))
            })?;
            let policy =
                policy::ek_policy(parsed.name_alg, &parsed.auth_policy).ok_or_else(|| {
                    TpmError::unexpected(
                        "TPM2_CreatePrimary (EK)",
                        "the EK's authPolicy is neither PolicyA nor PolicyB",
                    )
                })?;
            let saved = self
                .ctx
                .context_save(handle.into())
                .tss("TPM2_ContextSave (EK)")?;
            Ok(Ek {
                kind,
                public,
                name_alg: parsed.name_alg,
                policy,
                saved,
            })
        })();
        finish(result, self.ctx.flush_context(handle.into()))
    }

    /// The EK certificate (DER) the manufacturer stored at `kind`'s NV index, or `None` when
    /// that index is not defined. Trailing bytes after the DER certificate (padding some
    /// TPMs leave in the index) are dropped.
    pub fn ek_certificate(&mut self, kind: EkKind) -> Result<Option<Vec<u8>>, TpmError> {
        let index = kind.certificate_nv_index();
        if !self.nv_index_defined(index)? {
            return Ok(None);
        }
        let raw = ek::retrieve_ek_pubcert(&mut self.ctx, kind.selection())
            .tss("TPM2_NV_Read (EK certificate)")?;
        let len = der_sequence_len(&raw).ok_or_else(|| {
            TpmError::unexpected(
                "TPM2_NV_Read (EK certificate)",
                format!("NV index {index:#010x} does not hold a DER certificate"),
            )
        })?;
        Ok(raw.get(..len).map(<[u8]>::to_vec))
    }

    fn nv_index_defined(&mut self, index: u32) -> Result<bool, TpmError> {
        let (data, _) = self
            .ctx
            .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, index, 1))
            .tss("TPM2_GetCapability (handles)")?;
        match data {
            CapabilityData::Handles(list) => Ok(list.iter().any(|h| match h {
                TpmHandle::NvIndex(nv) => u32::from(*nv) == index,
                _ => false,
            })),
            _ => Err(TpmError::unexpected(
                "TPM2_GetCapability (handles)",
                "not a handle list",
            )),
        }
    }

    /// Creates an AK under `ek` (the EK's policy is satisfied with PolicySecret on the
    /// endorsement hierarchy): restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin,
    /// userWithAuth with an empty authValue, nameAlg SHA-256.
    pub fn create_ak(&mut self, ek: &Ek, kind: AkKind) -> Result<Ak, TpmError> {
        let (key_alg, sign_alg) = match kind {
            AkKind::Rsa2048 => (
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                SignatureSchemeAlgorithm::RsaSsa,
            ),
            AkKind::EccP256 => (
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                SignatureSchemeAlgorithm::EcDsa,
            ),
        };
        self.with_loaded(&ek.saved, |ctx, ek_handle| {
            let created = ak::create_ak_2(
                ctx,
                ek_handle,
                HashingAlgorithm::Sha256,
                key_alg,
                sign_alg,
                None,
                DefaultKey,
            )
            .tss("TPM2_Create (AK)")?;
            let handle = ak::load_ak(
                ctx,
                ek_handle,
                None,
                created.out_private,
                created.out_public,
            )
            .tss("TPM2_Load (AK)")?;
            let (public, saved) = save_and_flush(ctx, handle, "AK")?;
            Ok(Ak {
                kind,
                public,
                saved,
            })
        })
    }

    /// Extends PCR `index` with one digest per bank given (TPM2_PCR_Extend: banks not given
    /// are left alone). Each digest must be as long as its bank's hash.
    pub fn pcr_extend(&mut self, index: u8, digests: &[(HashAlg, &[u8])]) -> Result<(), TpmError> {
        if index >= PCR_COUNT {
            return Err(TpmError::invalid("PCR index", format!("{index}")));
        }
        if digests.is_empty() {
            return Err(TpmError::invalid("PCR digests", "none given"));
        }
        let mut values = DigestValues::new();
        let mut seen = BTreeSet::new();
        for (bank, digest) in digests {
            if digest.len() != bank.digest_len() || !seen.insert(*bank) {
                return Err(TpmError::invalid(
                    "PCR digests",
                    format!("{bank} digest of {} bytes, or bank twice", digest.len()),
                ));
            }
            let digest = Digest::try_from(digest.to_vec()).tss("PCR digest")?;
            values.set(tss_hash(*bank), digest);
        }
        let handle = PcrHandle::try_from(u32::from(index)).tss("PCR handle")?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.pcr_extend(handle, values)
            })
            .tss("TPM2_PCR_Extend")
    }

    /// Reads the selected PCRs (as many TPM2_PCR_Read calls as needed: each returns at most
    /// eight values). Fails if a bank is not allocated.
    pub fn pcr_read(&mut self, selection: &[(HashAlg, Vec<u8>)]) -> Result<PcrValues, TpmError> {
        let mut remaining = normalize_selection(selection)?;
        let mut out = PcrValues::new();
        while remaining.iter().any(|(_, pcrs)| !pcrs.is_empty()) {
            let list = selection_list(&remaining)?;
            let (_, read, digests) = self
                .ctx
                .execute_without_session(|ctx| ctx.pcr_read(list))
                .tss("TPM2_PCR_Read")?;
            let mut digests = digests.value().iter();
            let mut progressed = false;
            for selected in read.get_selections() {
                let bank = our_hash(selected.hashing_algorithm())?;
                for slot in selected.selected() {
                    let index = pcr_index(slot.into());
                    let requested = remaining
                        .iter_mut()
                        .find(|(b, _)| *b == bank)
                        .is_some_and(|(_, pcrs)| pcrs.remove(&index));
                    let value = digests.next().ok_or_else(|| {
                        TpmError::unexpected("TPM2_PCR_Read", "fewer digests than selected")
                    })?;
                    if !requested {
                        return Err(TpmError::unexpected(
                            "TPM2_PCR_Read",
                            format!("{bank} PCR {index} returned unasked or twice"),
                        ));
                    }
                    out.insert(bank, index, value.value().to_vec())
                        .map_err(|e| TpmError::unexpected("TPM2_PCR_Read", e.to_string()))?;
                    progressed = true;
                }
            }
            if !progressed {
                let missing: Vec<String> = remaining
                    .iter()
                    .filter(|(_, p)| !p.is_empty())
                    .map(|(b, p)| format!("{b} {p:?}"))
                    .collect();
                return Err(TpmError::unexpected(
                    "TPM2_PCR_Read",
                    format!("no values for {} (bank not allocated?)", missing.join(", ")),
                ));
            }
        }
        Ok(out)
    }

    /// TPM2_Quote by `ak` over `selection` (banks in the order given) with
    /// `qualifying_data` as extraData, and the PCR values it covers. The values are read
    /// before quoting and checked against the quote's pcrDigest; if a PCR changed in between,
    /// the quote is taken again (up to three times).
    pub fn quote(
        &mut self,
        ak: &Ak,
        qualifying_data: &[u8],
        selection: &[(HashAlg, Vec<u8>)],
    ) -> Result<Quote, TpmError> {
        let data = qualifying_data_of(qualifying_data)?;
        let normalized = normalize_selection(selection)?;
        if normalized.iter().all(|(_, pcrs)| pcrs.is_empty()) {
            return Err(TpmError::invalid("PCR selection", "no PCR selected"));
        }
        let list = selection_list(&normalized)?;
        for _ in 0..QUOTE_ATTEMPTS {
            let pcrs = self.pcr_read(selection)?;
            let (attest, signature) = self.with_loaded(&ak.saved, |ctx, ak_handle| {
                let (attest, signature) = ctx
                    .execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.quote(ak_handle, data.clone(), SignatureScheme::Null, list.clone())
                    })
                    .tss("TPM2_Quote")?;
                Ok((
                    attest.marshall().tss("marshalling TPMS_ATTEST")?,
                    signature.marshall().tss("marshalling TPMT_SIGNATURE")?,
                ))
            })?;
            if quoted_digest_matches(&attest, &signature, &pcrs)? {
                return Ok(Quote {
                    attest,
                    signature,
                    pcrs,
                });
            }
        }
        Err(TpmError::unexpected(
            "TPM2_Quote",
            format!("the PCRs changed while quoting, {QUOTE_ATTEMPTS} times"),
        ))
    }

    /// Creates a token-binding key (see [`BindingKey`]) under the storage root key, which is
    /// created on first use (ECC P-256 storage primary of the owner hierarchy, TCG TPM v2.0
    /// Provisioning Guidance template; the owner authorization must be empty).
    pub fn create_binding_key(&mut self) -> Result<BindingKey, TpmError> {
        self.create_signing_key(binding_key_template()?, "binding key")
    }

    /// Creates and loads a P-256 signing key from `template` under the SRK, and saves it.
    fn create_signing_key(
        &mut self,
        template: Public,
        what: &'static str,
    ) -> Result<BindingKey, TpmError> {
        let srk = self.srk()?;
        self.with_loaded(&srk, |ctx, srk_handle| {
            let created = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create(srk_handle, template, None, None, None, None)
                })
                .tss("TPM2_Create (signing key)")?;
            let handle = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(srk_handle, created.out_private, created.out_public)
                })
                .tss("TPM2_Load (signing key)")?;
            let (public_area, _, _) = ctx
                .read_public(handle)
                .tss("TPM2_ReadPublic (signing key)")?;
            let point = uncompressed_point(&public_area)?;
            let (public, saved) = save_and_flush(ctx, handle, what)?;
            Ok(BindingKey {
                public,
                point,
                saved,
            })
        })
    }

    /// TPM2_Certify of `key` by `ak` with `qualifying_data` as extraData: the AK vouches that
    /// the key, whose Name the attestation carries, is loaded in this TPM.
    pub fn certify(
        &mut self,
        ak: &Ak,
        key: &BindingKey,
        qualifying_data: &[u8],
    ) -> Result<Certification, TpmError> {
        let data = qualifying_data_of(qualifying_data)?;
        self.with_loaded(&ak.saved, |ctx, ak_handle| {
            with_loaded(ctx, &key.saved, |ctx, key_handle| {
                let (attest, signature) = ctx
                    .execute_with_sessions(
                        (
                            Some(AuthSession::Password),
                            Some(AuthSession::Password),
                            None,
                        ),
                        |ctx| {
                            ctx.certify(key_handle.into(), ak_handle, data, SignatureScheme::Null)
                        },
                    )
                    .tss("TPM2_Certify")?;
                Ok(Certification {
                    attest: attest.marshall().tss("marshalling TPMS_ATTEST")?,
                    signature: signature.marshall().tss("marshalling TPMT_SIGNATURE")?,
                })
            })
        })
    }

    /// Signs a SHA-256 digest with the binding key (ECDSA P-256) and returns `r ‖ s`, each
    /// left-padded to 32 bytes: the JWS ES256 signature when `digest` is the SHA-256 of the
    /// JWS signing input.
    pub fn sign_digest(&mut self, key: &BindingKey, digest: &[u8]) -> Result<[u8; 64], TpmError> {
        if digest.len() != 32 {
            return Err(TpmError::invalid(
                "digest",
                format!("{} bytes, not a SHA-256 digest", digest.len()),
            ));
        }
        let digest = Digest::try_from(digest.to_vec()).tss("digest")?;
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM_ST_HASHCHECK,
            hierarchy: TPM_RH_NULL,
            digest: Default::default(),
        })
        .tss("NULL hashcheck ticket")?;
        let signature = self.with_loaded(&key.saved, |ctx, handle| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(handle, digest, SignatureScheme::Null, ticket)
            })
            .tss("TPM2_Sign")
        })?;
        match signature {
            tss_esapi::structures::Signature::EcDsa(sig)
                if sig.hashing_algorithm() == HashingAlgorithm::Sha256 =>
            {
                let mut out = [0u8; 64];
                let (r, s) = out.split_at_mut(32);
                left_pad(sig.signature_r().value(), r)?;
                left_pad(sig.signature_s().value(), s)?;
                Ok(out)
            }
            other => Err(TpmError::unexpected(
                "TPM2_Sign",
                format!("{:?} signature, not ECDSA-SHA256", other.algorithm()),
            )),
        }
    }

    /// TPM2_ActivateCredential: recovers the secret the verifier sealed to `ek` for `ak`'s
    /// Name with `attest_verifiers::tpm::make_credential`. `id_object` and
    /// `encrypted_secret` are the `TPM2B_ID_OBJECT` and `TPM2B_ENCRYPTED_SECRET` wire forms
    /// (size prefix included). The TPM refuses (`TPM_RC_INTEGRITY`) a credential made for
    /// another Name or another EK.
    pub fn activate_credential(
        &mut self,
        ek: &Ek,
        ak: &Ak,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let id_object = IdObject::try_from(tpm2b_body(id_object, "TPM2B_ID_OBJECT")?.to_vec())
            .tss("TPM2B_ID_OBJECT")?;
        let secret = EncryptedSecret::try_from(
            tpm2b_body(encrypted_secret, "TPM2B_ENCRYPTED_SECRET")?.to_vec(),
        )
        .tss("TPM2B_ENCRYPTED_SECRET")?;
        let policy = ek.policy.clone();
        let name_alg = tss_hash(ek.name_alg);
        self.with_loaded(&ek.saved, |ctx, ek_handle| {
            with_loaded(ctx, &ak.saved, |ctx, ak_handle| {
                let session = ek_policy_session(ctx, name_alg, &policy)?;
                let result = ctx
                    .execute_with_sessions(
                        (Some(AuthSession::Password), Some(session), None),
                        |ctx| ctx.activate_credential(ak_handle, ek_handle, id_object, secret),
                    )
                    .tss("TPM2_ActivateCredential");
                let flushed = flush_session(ctx, session);
                let digest = finish(result, flushed)?;
                Ok(Zeroizing::new(digest.value().to_vec()))
            })
        })
    }

    /// The storage root key's saved context, created on first use.
    fn srk(&mut self) -> Result<TpmsContext, TpmError> {
        if let Some(srk) = &self.srk {
            return Ok(srk.clone());
        }
        let template = srk_template()?;
        let handle = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .tss("TPM2_CreatePrimary (SRK)")?
            .key_handle;
        let saved = self
            .ctx
            .context_save(handle.into())
            .tss("TPM2_ContextSave (SRK)");
        let saved = finish(saved, self.ctx.flush_context(handle.into()))?;
        self.srk = Some(saved.clone());
        Ok(saved)
    }

    fn with_loaded<T>(
        &mut self,
        saved: &TpmsContext,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        with_loaded(&mut self.ctx, saved, f)
    }
}

/// Loads a saved object context, runs `f` with it, and flushes it whatever `f` returned.
fn with_loaded<T>(
    ctx: &mut Context,
    saved: &TpmsContext,
    f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    let handle = ctx.context_load(saved.clone()).tss("TPM2_ContextLoad")?;
    let result = f(ctx, handle.into());
    finish(result, ctx.flush_context(handle))
}

/// `result`, unless it succeeded and the cleanup after it failed.
fn finish<T>(result: Result<T, TpmError>, cleanup: tss_esapi::Result<()>) -> Result<T, TpmError> {
    let value = result?;
    cleanup.tss("TPM2_FlushContext")?;
    Ok(value)
}

/// Reads a freshly loaded object's public area and Name, saves its context and flushes it.
fn save_and_flush(
    ctx: &mut Context,
    handle: KeyHandle,
    what: &'static str,
) -> Result<(ObjectPublic, TpmsContext), TpmError> {
    let result = (|| {
        let (public, name, _) = ctx.read_public(handle).tss("TPM2_ReadPublic")?;
        let public = ObjectPublic::new(&public, name.value(), what)?;
        let saved = ctx.context_save(handle.into()).tss("TPM2_ContextSave")?;
        Ok((public, saved))
    })();
    finish(result, ctx.flush_context(handle.into()))
}

/// A policy session in which the EK's authPolicy is satisfied (see [`policy`]).
/// An unsalted, unbound policy session with `hash` as its digest algorithm.
fn start_policy_session(
    ctx: &mut Context,
    hash: HashingAlgorithm,
) -> Result<AuthSession, TpmError> {
    ctx.start_auth_session(
        None,
        None,
        None,
        SessionType::Policy,
        SymmetricDefinition::Null,
        hash,
    )
    .tss("TPM2_StartAuthSession (policy)")?
    .ok_or_else(|| TpmError::unexpected("TPM2_StartAuthSession", "no session"))
}

fn ek_policy_session(
    ctx: &mut Context,
    name_alg: HashingAlgorithm,
    policy: &EkPolicy,
) -> Result<AuthSession, TpmError> {
    let session = start_policy_session(ctx, name_alg)?;
    let steps = (|| {
        let policy_session = PolicySession::try_from(session).tss("policy session")?;
        ctx.execute_with_nullauth_session(|ctx| {
            ctx.policy_secret(
                policy_session,
                AuthHandle::Endorsement,
                Default::default(),
                Default::default(),
                Default::default(),
                None,
            )
        })
        .tss("TPM2_PolicySecret (endorsement)")?;
        if let EkPolicy::PolicyB(branches) = policy {
            let mut list = DigestList::new();
            for branch in branches {
                list.add(Digest::try_from(branch.clone()).tss("policy digest")?)
                    .tss("policy digest list")?;
            }
            ctx.policy_or(policy_session, list).tss("TPM2_PolicyOR")?;
        }
        Ok(())
    })();
    match steps {
        Ok(()) => Ok(session),
        Err(e) => {
            // The command error matters more than a failed flush of the session.
            let _ = flush_session(ctx, session);
            Err(e)
        }
    }
}

fn flush_session(ctx: &mut Context, session: AuthSession) -> tss_esapi::Result<()> {
    match session {
        AuthSession::Password => Ok(()),
        other => {
            let handle: tss_esapi::handles::SessionHandle = other.into();
            ctx.flush_context(ObjectHandle::from(handle))
        }
    }
}

/// The SRK template of the TCG TPM v2.0 Provisioning Guidance (ECC P-256, AES-128-CFB,
/// noDA, restricted decryption, userWithAuth).
fn srk_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .tss("SRK attributes")?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()
            .tss("SRK parameters")?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .tss("SRK template")
}

/// The binding key template: P-256 ECDSA-SHA256, unrestricted signing,
/// `fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign`.
fn binding_key_template() -> Result<Public, TpmError> {
    signing_key_template(true, None)
}

/// An unrestricted P-256 ECDSA-SHA256 signing key; `fixed` sets fixedTPM and fixedParent.
fn signing_key_template(fixed: bool, auth_policy: Option<Digest>) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(fixed)
        .with_fixed_parent(fixed)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()
        .tss("binding key attributes")?;
    let mut builder = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    if let Some(policy) = auth_policy {
        builder = builder.with_auth_policy(policy);
    }
    builder
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(
                EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                EccCurve::NistP256,
            )
            .build()
            .tss("binding key parameters")?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .tss("signing key template")
}

/// Test support: the export path, so tests can show it works for a duplicable key and is
/// refused for binding keys. The sidecar itself never exports anything.
#[cfg(feature = "test-util")]
impl Tpm {
    /// A P-256 signing key like the binding key but duplicable: fixedTPM and fixedParent
    /// clear, authPolicy = PolicyCommandCode(TPM2_Duplicate).
    pub fn create_exportable_key(&mut self) -> Result<BindingKey, TpmError> {
        // TPM2 Part 3, 23.11: policyDigest' = H(policyDigest ‖ TPM_CC_PolicyCommandCode ‖ code)
        let mut input = vec![0u8; 32];
        input.extend_from_slice(&0x0000_016c_u32.to_be_bytes());
        input.extend_from_slice(&0x0000_014b_u32.to_be_bytes());
        let digest = attest_proto::crypto::sha256(&input);
        let policy = Digest::try_from(digest.to_vec()).tss("authPolicy")?;
        self.create_signing_key(signing_key_template(false, Some(policy))?, "exportable key")
    }

    /// TPM2_Duplicate of `key` in the clear (no new parent, no inner wrapper), authorized by a
    /// PolicyCommandCode(TPM2_Duplicate) session: the key's private part, or the TPM's refusal.
    pub fn try_export(&mut self, key: &BindingKey) -> Result<Vec<u8>, TpmError> {
        self.with_loaded(&key.saved, |ctx, handle| {
            let session = start_policy_session(ctx, HashingAlgorithm::Sha256)?;
            let result = (|| {
                let policy = PolicySession::try_from(session).tss("policy session")?;
                ctx.policy_command_code(policy, tss_esapi::constants::CommandCode::Duplicate)
                    .tss("TPM2_PolicyCommandCode")?;
                let (_, private, _) = ctx
                    .execute_with_session(Some(session), |ctx| {
                        ctx.duplicate(
                            handle.into(),
                            ObjectHandle::Null,
                            None,
                            SymmetricDefinitionObject::Null,
                        )
                    })
                    .tss("TPM2_Duplicate")?;
                Ok(private.value().to_vec())
            })();
            let flushed = flush_session(ctx, session);
            finish(result, flushed)
        })
    }
}

fn uncompressed_point(public: &Public) -> Result<[u8; 65], TpmError> {
    match public {
        Public::Ecc { unique, .. } => {
            let mut point = [0u8; 65];
            let (tag, xy) = point.split_at_mut(1);
            let (x, y) = xy.split_at_mut(32);
            if let Some(t) = tag.first_mut() {
                *t = 4;
            }
            left_pad(unique.x().value(), x)?;
            left_pad(unique.y().value(), y)?;
            Ok(point)
        }
        _ => Err(TpmError::unexpected(
            "TPM2_ReadPublic (binding key)",
            "not an ECC key",
        )),
    }
}

/// Copies a big-endian integer into `out`, left-padded with zeros.
fn left_pad(value: &[u8], out: &mut [u8]) -> Result<(), TpmError> {
    let start = value.iter().take_while(|&&b| b == 0).count();
    let value = value.get(start..).unwrap_or_default();
    let pad = out
        .len()
        .checked_sub(value.len())
        .ok_or_else(|| TpmError::unexpected("ECC value", "longer than a P-256 coordinate"))?;
    let (zeros, rest) = out.split_at_mut(pad);
    zeros.fill(0);
    rest.copy_from_slice(value);
    Ok(())
}

fn qualifying_data_of(data: &[u8]) -> Result<Data, TpmError> {
    if data.len() > MAX_QUALIFYING_DATA {
        return Err(TpmError::invalid(
            "qualifying data",
            format!("{} bytes (at most {MAX_QUALIFYING_DATA})", data.len()),
        ));
    }
    Data::try_from(data.to_vec()).tss("qualifying data")
}

/// The body of a TPM2B wire form whose size prefix must equal the rest of the input.
fn tpm2b_body<'a>(wire: &'a [u8], what: &'static str) -> Result<&'a [u8], TpmError> {
    match wire {
        [hi, lo, body @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == body.len() => {
            Ok(body)
        }
        _ => Err(TpmError::invalid(
            what,
            "the u16 size prefix does not match the length",
        )),
    }
}

/// Banks in the caller's order (a bank named twice is merged into its first place), indices
/// deduplicated; every index below [`PCR_COUNT`].
fn normalize_selection(
    selection: &[(HashAlg, Vec<u8>)],
) -> Result<Vec<(HashAlg, BTreeSet<u8>)>, TpmError> {
    let mut out: Vec<(HashAlg, BTreeSet<u8>)> = Vec::new();
    for (bank, pcrs) in selection {
        if let Some(bad) = pcrs.iter().find(|&&i| i >= PCR_COUNT) {
            return Err(TpmError::invalid("PCR selection", format!("PCR {bad}")));
        }
        match out.iter_mut().find(|(b, _)| b == bank) {
            Some((_, existing)) => existing.extend(pcrs.iter().copied()),
            None => out.push((*bank, pcrs.iter().copied().collect())),
        }
    }
    Ok(out)
}

/// A `TPML_PCR_SELECTION` in the given bank order (the `tss-esapi` builder orders banks by
/// a hash map), three select octets per bank.
fn selection_list(selection: &[(HashAlg, BTreeSet<u8>)]) -> Result<PcrSelectionList, TpmError> {
    let mut tpml = TPML_PCR_SELECTION::default();
    let wanted: Vec<_> = selection.iter().filter(|(_, p)| !p.is_empty()).collect();
    if wanted.len() > tpml.pcrSelections.len() {
        return Err(TpmError::invalid("PCR selection", "too many banks"));
    }
    for ((bank, pcrs), slot) in wanted.iter().zip(tpml.pcrSelections.iter_mut()) {
        slot.hash = bank.tpm_id();
        slot.sizeofSelect = 3;
        for &index in pcrs {
            if let Some(octet) = slot.pcrSelect.get_mut(usize::from(index / 8)) {
                *octet |= 1 << (index % 8);
            }
        }
        tpml.count += 1;
    }
    PcrSelectionList::try_from(tpml).tss("PCR selection")
}

/// Whether the quote's pcrDigest is the hash (with the signature's hash) of `pcrs` over the
/// quote's own selection, in its order.
fn quoted_digest_matches(
    attest: &[u8],
    signature: &[u8],
    pcrs: &PcrValues,
) -> Result<bool, TpmError> {
    let bad = |e: attest_verifiers::VerifyError| TpmError::unexpected("TPM2_Quote", e.to_string());
    let attest = verify::Attest::parse(attest).map_err(bad)?;
    let hash = verify::Signature::parse(signature).map_err(bad)?.hash();
    let Attested::Quote(quote) = attest.attested else {
        return Err(TpmError::unexpected(
            "TPM2_Quote",
            "not a quote attestation",
        ));
    };
    let mut concatenated = Vec::new();
    for selection in &quote.pcr_select {
        for &index in &selection.pcrs {
            match pcrs.get(selection.hash, index) {
                Some(value) => concatenated.extend_from_slice(value),
                None => return Ok(false),
            }
        }
    }
    Ok(hash.digest(&concatenated) == quote.pcr_digest)
}

/// The index of a `TPMS_PCR_SELECTION` bit (`PcrSlot` values are `1 << index`).
fn pcr_index(slot: u32) -> u8 {
    // trailing_zeros of a u32 is at most 32.
    u8::try_from(slot.trailing_zeros()).unwrap_or(u8::MAX)
}

fn tss_hash(hash: HashAlg) -> HashingAlgorithm {
    match hash {
        HashAlg::Sha1 => HashingAlgorithm::Sha1,
        HashAlg::Sha256 => HashingAlgorithm::Sha256,
        HashAlg::Sha384 => HashingAlgorithm::Sha384,
        HashAlg::Sha512 => HashingAlgorithm::Sha512,
    }
}

fn our_hash(hash: HashingAlgorithm) -> Result<HashAlg, TpmError> {
    match hash {
        HashingAlgorithm::Sha1 => Ok(HashAlg::Sha1),
        HashingAlgorithm::Sha256 => Ok(HashAlg::Sha256),
        HashingAlgorithm::Sha384 => Ok(HashAlg::Sha384),
        HashingAlgorithm::Sha512 => Ok(HashAlg::Sha512),
        other => Err(TpmError::unexpected(
            "TPM2_PCR_Read",
            format!("unsupported bank {other:?}"),
        )),
    }
}

/// The length of the DER SEQUENCE at the start of `der` (tag 0x30, definite length), if it
/// fits in `der`.
fn der_sequence_len(der: &[u8]) -> Option<usize> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = rest
            .get(..n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + n, len)
    };
    let total = header.checked_add(len)?;
    (total <= der.len()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_sequence_len(&[0x30, 0x03, 1, 2, 3, 0xff, 0xff]),
            Some(5)
        );
        assert_eq!(der_sequence_len(&[0x30, 0x82, 0x00, 0x01, 9, 0]), Some(5));
        assert_eq!(der_sequence_len(&[0x30, 0x05, 1]), None);
        assert_eq!(der_sequence_len(&[0x31, 0x00]), None);
        assert_eq!(der_sequence_len(&[0x30, 0x80]), None);
        assert_eq!(der_sequence_len(&[]), None);
    }

    #[test]
    fn selections_keep_bank_order() {
        let sel = normalize_selection(&[
            (HashAlg::Sha384, vec![23, 0]),
            (HashAlg::Sha1, vec![16]),
            (HashAlg::Sha384, vec![0, 7]),
        ])
        .unwrap();
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].0, HashAlg::Sha384);
        assert_eq!(sel[0].1.iter().copied().collect::<Vec<_>>(), [0, 7, 23]);
        let list = selection_list(&sel).unwrap();
        let banks: Vec<_> = list
            .get_selections()
            .iter()
            .map(|s| s.hashing_algorithm())
            .collect();
        assert_eq!(banks, [HashingAlgorithm::Sha384, HashingAlgorithm::Sha1]);
        assert!(normalize_selection(&[(HashAlg::Sha256, vec![24])]).is_err());
    }

    #[test]
    fn padding_and_wire_forms() {
        let mut out = [0xaa; 4];
        left_pad(&[0, 0, 1, 2], &mut out).unwrap();
        assert_eq!(out, [0, 0, 1, 2]);
        left_pad(&[0, 7, 1, 2, 3], &mut out).unwrap();
        assert_eq!(out, [7, 1, 2, 3]);
        assert!(left_pad(&[1, 2, 3, 4, 5], &mut out).is_err());
        assert_eq!(tpm2b_body(&[0, 2, 9, 9], "x").unwrap(), [9, 9]);
        assert!(tpm2b_body(&[0, 3, 9, 9], "x").is_err());
        assert!(tpm2b_body(&[0], "x").is_err());
        assert!(qualifying_data_of(&[0; 65]).is_err());
        assert!(qualifying_data_of(&[0; 64]).is_ok());
        assert_eq!(pcr_index(1 << 23), 23);
    }

    #[test]
    fn pcr_json_round_trips() {
        let mut v = PcrValues::new();
        v.insert(HashAlg::Sha1, 16, vec![1; 20]).unwrap();
        v.insert(HashAlg::Sha384, 0, vec![2; 48]).unwrap();
        let json = pcr_values_json(&v);
        assert_eq!(PcrValues::from_json(json.as_bytes()).unwrap(), v);
    }
}
