//! The crypto-agile event log parser, its replay and the event data decoders are total and
//! bounded.
#![no_main]

use attest_verifiers::tpm::{self, EventLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = EventLog::parse(data) {
        assert!(log.events().len() <= tpm::MAX_EVENTS);
        let replayed = log.replay();
        for (bank, pcrs) in &replayed {
            assert!(pcrs.keys().all(|&p| usize::from(p) < tpm::MAX_PCRS));
            assert!(pcrs.values().all(|v| v.len() == bank.digest_len()));
        }
        for event in log.events() {
            let _ = event.type_name();
            let _ = tpm::decode_event_data(event.event_type, &event.data);
        }
    }
    // The decoders on raw bytes, for every event type that has one.
    for event_type in [
        0x1,
        0x4,
        0x5,
        0x8,
        0xd,
        0x8000_0001,
        0x8000_0002,
        0x8000_0003,
        0x8000_00e0,
    ] {
        let _ = tpm::decode_event_data(event_type, data);
    }
});
