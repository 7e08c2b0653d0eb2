//! The SEV-SNP report parser is total: any bytes give a report or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = attest_verifiers::snp::report::parse(data) {
        assert_eq!(data.len(), attest_verifiers::snp::report::REPORT_LEN);
        let _ = report.signature_fixed();
    }
});
