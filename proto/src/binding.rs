//! The evidence binding (DESIGN.md, "Binding a token to hardware").

use crate::crypto;

/// Domain separation for the evidence binding.
pub const BINDING_CONTEXT: &[u8] = b"attest-broker/v1";

/// `SHA-512("attest-broker/v1" ‖ nonce ‖ jkt)`: what evidence user data commits to (SEV-SNP
/// and TDX REPORT_DATA, the Nitro nonce; its first 32 bytes as TPM qualifyingData). `jkt` is
/// the raw RFC 7638 thumbprint of the binding key.
pub fn attestation_binding(nonce: &[u8], jkt: &[u8; 32]) -> [u8; 64] {
    crypto::sha512_parts(&[BINDING_CONTEXT, nonce, jkt])
}

/// The TPM qualifyingData for `nonce` and `jkt`: the first half of [`attestation_binding`].
pub fn tpm_qualifying_data(nonce: &[u8], jkt: &[u8; 32]) -> [u8; 32] {
    let full = attestation_binding(nonce, jkt);
    let mut out = [0u8; 32];
    let (first, _) = full.split_at(32);
    out.copy_from_slice(first);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_commits_to_every_input() {
        let base = attestation_binding(&[1; 32], &[2; 32]);
        assert_ne!(base, attestation_binding(&[1; 31], &[2; 32]));
        assert_ne!(base, attestation_binding(&[1; 32], &[3; 32]));
        assert_eq!(base[..32], tpm_qualifying_data(&[1; 32], &[2; 32]));
        // Independent computation of the same definition.
        let mut input = b"attest-broker/v1".to_vec();
        input.extend_from_slice(&[1; 32]);
        input.extend_from_slice(&[2; 32]);
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &input);
        assert_eq!(base.as_slice(), expected.as_ref());
    }
}
