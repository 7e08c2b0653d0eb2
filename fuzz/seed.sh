#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/, git-ignored) from the real vectors in
# ../shared/vectors — the vectors are never copied into the repository itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vectors=${ATTEST_VECTORS:-$here/../../shared/vectors}
mkdir -p "$here"/corpus/{snp_report,snp_verify,cert_bundle}
for dir in "$vectors"/snp/*/; do
  name=$(basename "$dir")
  cp "$dir/report.bin" "$here/corpus/snp_report/$name.bin"
  for cert in "$dir"/*.der "$dir"/*.pem; do
    [ -e "$cert" ] || continue
    cp "$cert" "$here/corpus/cert_bundle/$name-$(basename "$cert")"
    # snp_verify input: 2-byte little-endian report length, report, certificate.
    { printf '\xa0\x04'; cat "$dir/report.bin" "$cert"; } > "$here/corpus/snp_verify/$name-$(basename "$cert")"
  done
done
mkdir -p "$here/corpus/nitro_doc"
for dir in "$vectors"/nitro/*/; do
  name=$(basename "$dir")
  cp "$dir/attestation_doc.cose" "$here/corpus/nitro_doc/$name.cose"
  # The same document as base64 text, to exercise decode_input.
  base64 -w 76 "$dir/attestation_doc.cose" > "$here/corpus/nitro_doc/$name.b64"
done
mkdir -p "$here"/corpus/{tpm_attest,tpm_public,tpm_signature,tpm_eventlog}
for f in "$vectors"/tpm/*/quote*_attest.bin "$vectors"/azure-snp-vtpm/*/tpm_quote_attest.bin; do
  cp "$f" "$here/corpus/tpm_attest/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for f in "$vectors"/tpm/*/quote*_sig.bin "$vectors"/azure-snp-vtpm/*/tpm_quote_signature.bin; do
  cp "$f" "$here/corpus/tpm_signature/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for f in "$vectors"/tpm/*/ak_pub*.bin "$vectors"/tpm/*/ak_*.pem "$vectors"/azure-snp-vtpm/*/ak_pub_HCLAkPub.pem; do
  cp "$f" "$here/corpus/tpm_public/$(basename "$(dirname "$f")")-$(basename "$f")"
done
cp "$vectors"/tpm/gce-cos85-nonce9009/event_log.bin "$here/corpus/tpm_eventlog/gce-cos85.bin"
echo "seeded $(find "$here/corpus" -type f | wc -l) corpus files from $vectors"
