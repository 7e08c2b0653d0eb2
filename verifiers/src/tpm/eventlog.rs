//! TCG PC Client crypto-agile event logs: parsing, replay to PCR values, and the check that
//! a log replays to the PCR values a verified quote vouches for.
//!
//! Format: TCG PC Client Platform Firmware Profile (PFP) 1.05, 10.2 and 10.4.5. The log is
//! little-endian. Its first entry is a SHA-1-format `TCG_PCR_EVENT` (PCR 0, `EV_NO_ACTION`,
//! zero digest) whose data is the `TCG_EfiSpecIdEvent` "Spec ID Event03" naming every bank and
//! its digest size; every later entry is a `TCG_PCR_EVENT2` with one digest per bank.

use std::collections::{BTreeMap, BTreeSet};

use super::alg::HashAlg;
use super::claims::{EventClaims, EventLogClaims};
use super::events;
use super::pcrs::PcrValues;
use super::structures::{MAX_DIGEST_BYTES, MAX_PCRS, MAX_PCR_BANKS};
use crate::reader::Reader;
use crate::VerifyError;

/// Upper bound on a whole log. Firmware logs are tens of KiB (the GCE one is 23 KiB); Windows
/// boot logs with many drivers reach a few hundred.
pub const MAX_EVENT_LOG_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound on entries in a log.
pub const MAX_EVENTS: usize = 16 * 1024;
/// Upper bound on one event's data. The largest firmware events are EFI variables (a full
/// dbx is about 30 KiB) and GPT headers.
pub const MAX_EVENT_DATA_BYTES: usize = 256 * 1024;

/// `EV_NO_ACTION`: informational, never extended (PFP 10.4.1).
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// `EV_EFI_VARIABLE_DRIVER_CONFIG`.
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;

const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";

/// A bank the log's Spec ID event declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAlgorithm {
    /// `TPM_ALG_ID`.
    pub id: u16,
    /// Digest size in bytes.
    pub digest_size: u16,
    /// The hash, when this crate knows it (only those banks are replayed).
    pub hash: Option<HashAlg>,
}

/// One `TCG_PCR_EVENT2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log; the Spec ID header is 0.
    pub sequence: usize,
    /// PCR index (below 24).
    pub pcr: u8,
    /// `EventType`.
    pub event_type: u32,
    /// One digest per bank, in the log's order.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data.
    pub data: Vec<u8>,
}

impl Event {
    /// The digest for `hash`, if the log has that bank.
    pub fn digest(&self, hash: HashAlg) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(id, _)| *id == hash.tpm_id())
            .map(|(_, d)| d.as_slice())
    }

    /// The PFP name of the event type (`EV_SEPARATOR`, …) or its hex value.
    pub fn type_name(&self) -> String {
        events::type_name(self.event_type)
    }
}

/// A parsed crypto-agile event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    algorithms: Vec<LogAlgorithm>,
    events: Vec<Event>,
    startup_locality: Option<u8>,
}

impl EventLog {
    /// Parses a whole log, bounded by [`MAX_EVENT_LOG_BYTES`], [`MAX_EVENTS`] and
    /// [`MAX_EVENT_DATA_BYTES`].
    pub fn parse(data: &[u8]) -> Result<Self, VerifyError> {
        if data.len() > MAX_EVENT_LOG_BYTES {
            return Err(VerifyError::malformed(
                "TCG event log",
                format!("{} bytes exceeds {MAX_EVENT_LOG_BYTES}", data.len()),
            ));
        }
        let mut r = Reader::new("TCG event log", data);
        let algorithms = spec_id_event(&mut r)?;
        let mut events = Vec::new();
        let mut startup_locality = None;
        let mut pcr0_extended = false;
        while r.remaining() > 0 {
            if events.len() >= MAX_EVENTS {
                return Err(malformed(format!("more than {MAX_EVENTS} events")));
            }
            let event = pcr_event2(&mut r, &algorithms, events.len() + 1)?;
            if event.event_type == EV_NO_ACTION {
                if let Some(locality) = startup_locality_event(&event) {
                    // PFP 10.4.5.3: logged before anything is measured into PCR 0, once.
                    if pcr0_extended || startup_locality.is_some() {
                        return Err(malformed(
                            "StartupLocality event after a PCR 0 measurement or twice".into(),
                        ));
                    }
                    startup_locality = Some(locality);
                }
            } else if event.pcr == 0 {
                pcr0_extended = true;
            }
            events.push(event);
        }
        Ok(EventLog {
            algorithms,
            events,
            startup_locality,
        })
    }

    /// The banks the Spec ID event declares.
    pub fn algorithms(&self) -> &[LogAlgorithm] {
        &self.algorithms
    }

    /// The events after the header.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The locality the TPM was started from, when the log says (PCR 0's initial value).
    pub fn startup_locality(&self) -> Option<u8> {
        self.startup_locality
    }

    /// Replays the log: for every known bank, the value each PCR the log touches ends at.
    ///
    /// Initial values follow the PC Client PTP: zero, except PCRs 17–22 (all ones until a
    /// dynamic launch) and PCR 0, whose last byte is the startup locality when the log has
    /// a StartupLocality event (PFP 10.4.5.3). `EV_NO_ACTION` events are not extended.
    pub fn replay(&self) -> BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>> {
        let mut banks = BTreeMap::new();
        for alg in &self.algorithms {
            let Some(hash) = alg.hash else { continue };
            let mut pcrs: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
            if let Some(locality) = self.startup_locality {
                let mut initial = vec![0u8; hash.digest_len()];
                if let Some(last) = initial.last_mut() {
                    *last = locality;
                }
                pcrs.insert(0, initial);
            }
            for event in self.events.iter().filter(|e| e.event_type != EV_NO_ACTION) {
                let Some(digest) = event.digest(hash) else {
                    continue;
                };
                let value = pcrs
                    .entry(event.pcr)
                    .or_insert_with(|| initial_value(event.pcr, hash));
                *value = hash.digest_parts(&[value, digest]);
            }
            banks.insert(hash, pcrs);
        }
        banks
    }
}

fn initial_value(pcr: u8, hash: HashAlg) -> Vec<u8> {
    let fill = if (17..=22).contains(&pcr) { 0xff } else { 0 };
    vec![fill; hash.digest_len()]
}

fn malformed(detail: String) -> VerifyError {
    VerifyError::malformed("TCG event log", detail)
}

/// The first entry: a `TCG_PCR_EVENT` holding a `TCG_EfiSpecIdEvent` (PFP 10.4.5.1).
fn spec_id_event(r: &mut Reader<'_>) -> Result<Vec<LogAlgorithm>, VerifyError> {
    let pcr = r.u32_le()?;
    let event_type = r.u32_le()?;
    let digest = r.array::<20>()?;
    let size = event_size(r)?;
    let data = r.bytes(size)?;
    if pcr != 0 || event_type != EV_NO_ACTION || digest != [0; 20] {
        return Err(malformed(
            "the first event is not a PCR 0 EV_NO_ACTION header with a zero digest".into(),
        ));
    }
    let mut s = Reader::new("TCG_EfiSpecIdEvent", data);
    if s.array::<16>()? != *SPEC_ID_SIGNATURE {
        return Err(malformed(
            "no \"Spec ID Event03\" header: not a crypto-agile log".into(),
        ));
    }
    let _platform_class = s.u32_le()?;
    let _minor = s.u8()?;
    let major = s.u8()?;
    let _errata = s.u8()?;
    let _uintn_size = s.u8()?;
    if major != 2 {
        return Err(malformed(format!("Spec ID version {major} is not 2")));
    }
    let count = s.u32_le()? as usize;
    if count == 0 || count > MAX_PCR_BANKS {
        return Err(malformed(format!(
            "{count} algorithms (1 to {MAX_PCR_BANKS})"
        )));
    }
    let mut algorithms: Vec<LogAlgorithm> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = s.u16_le()?;
        let digest_size = s.u16_le()?;
        let hash = HashAlg::from_tpm(id);
        let size_ok = match hash {
            Some(h) => usize::from(digest_size) == h.digest_len(),
            None => usize::from(digest_size) <= MAX_DIGEST_BYTES,
        };
        if !size_ok || algorithms.iter().any(|a| a.id == id) {
            return Err(malformed(format!(
                "algorithm {id:#06x} with digest size {digest_size} (or listed twice)"
            )));
        }
        algorithms.push(LogAlgorithm {
            id,
            digest_size,
            hash,
        });
    }
    let vendor_size = usize::from(s.u8()?);
    s.skip(vendor_size)?;
    s.finish()?;
    Ok(algorithms)
}

fn event_size(r: &mut Reader<'_>) -> Result<usize, VerifyError> {
    let size = r.u32_le()? as usize;
    if size > MAX_EVENT_DATA_BYTES {
        return Err(malformed(format!(
            "event data of {size} bytes exceeds {MAX_EVENT_DATA_BYTES}"
        )));
    }
    Ok(size)
}

/// A `TCG_PCR_EVENT2` (PFP 10.2.2): PCR index, type, `TPML_DIGEST_VALUES` with exactly one
/// digest for each bank of the header, then the event data.
fn pcr_event2(
    r: &mut Reader<'_>,
    algorithms: &[LogAlgorithm],
    sequence: usize,
) -> Result<Event, VerifyError> {
    let pcr = r.u32_le()?;
    if pcr as usize >= MAX_PCRS {
        return Err(malformed(format!("event {sequence}: PCR index {pcr}")));
    }
    let event_type = r.u32_le()?;
    let count = r.u32_le()? as usize;
    if count != algorithms.len() {
        return Err(malformed(format!(
            "event {sequence}: {count} digests, the header declares {} banks",
            algorithms.len()
        )));
    }
    let mut digests: Vec<(u16, Vec<u8>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.u16_le()?;
        let alg = algorithms
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| malformed(format!("event {sequence}: undeclared bank {id:#06x}")))?;
        if digests.iter().any(|(d, _)| *d == id) {
            return Err(malformed(format!("event {sequence}: bank {id:#06x} twice")));
        }
        digests.push((id, r.bytes(usize::from(alg.digest_size))?.to_vec()));
    }
    let size = event_size(r)?;
    let data = r.bytes(size)?.to_vec();
    Ok(Event {
        sequence,
        pcr: pcr as u8,
        event_type,
        digests,
        data,
    })
}

/// `TCG_EfiStartupLocalityEvent` (PFP 10.4.5.3): signature, then the locality byte.
fn startup_locality_event(event: &Event) -> Option<u8> {
    match event.data.as_slice() {
        [signature @ .., locality] if event.pcr == 0 && signature == STARTUP_LOCALITY_SIGNATURE => {
            Some(*locality)
        }
        _ => None,
    }
}

/// Checks that `log` replays to the PCR values a verified quote covered, and describes what
/// it proves.
///
/// For every bank both the log and the quote have, every PCR the log touches and the quote
/// selected must replay to the quoted value; a mismatch is `tpm.event_log`. At least one PCR
/// must be checked this way, in at least one bank. Events are reported only for PCRs verified this way, with digests only of
/// the banks that verified them: nothing in the claims is unvouched for.
pub(crate) fn check_against_quote(
    log: &EventLog,
    quoted: &PcrValues,
) -> Result<EventLogClaims, VerifyError> {
    let fail = |detail: String| VerifyError::TpmEventLog { detail };
    let replayed = log.replay();
    let mut verified: BTreeMap<HashAlg, BTreeSet<u8>> = BTreeMap::new();
    for (bank, values) in quoted.banks() {
        let Some(replayed_bank) = replayed.get(bank) else {
            continue;
        };
        let entry = verified.entry(*bank).or_default();
        for (pcr, value) in replayed_bank {
            if let Some(quoted_value) = values.get(pcr) {
                if quoted_value != value {
                    return Err(fail(format!(
                        "{bank} PCR {pcr} replays to {}, the quote has {}",
                        hex::encode(value),
                        hex::encode(quoted_value)
                    )));
                }
                entry.insert(*pcr);
            }
        }
    }
    verified.retain(|_, pcrs| !pcrs.is_empty());
    if verified.is_empty() {
        let quoted_banks: Vec<_> = quoted.banks().keys().map(|b| b.name()).collect();
        return Err(fail(format!(
            "the quote (banks: [{}]) covers none of the PCRs the log extends in its banks",
            quoted_banks.join(", ")
        )));
    }
    let mut claims = Vec::new();
    let mut unverified = 0;
    for event in log.events() {
        let banks: Vec<HashAlg> = verified
            .iter()
            .filter(|(_, pcrs)| pcrs.contains(&event.pcr))
            .map(|(bank, _)| *bank)
            .collect();
        if banks.is_empty() {
            unverified += 1;
            continue;
        }
        claims.push(EventClaims::new(event, &banks));
    }
    let verified_pcrs: BTreeSet<u8> = verified.values().flatten().copied().collect();
    Ok(EventLogClaims {
        verified_banks: verified.keys().copied().collect(),
        verified_pcrs: verified_pcrs.into_iter().collect(),
        startup_locality: log.startup_locality(),
        secure_boot: events::secure_boot(&claims),
        unverified_events: unverified,
        events: claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(algs: &[(u16, u16)]) -> Vec<u8> {
        let mut spec = SPEC_ID_SIGNATURE.to_vec();
        spec.extend(0u32.to_le_bytes());
        spec.extend([0, 2, 0, 2]);
        spec.extend((algs.len() as u32).to_le_bytes());
        for (id, size) in algs {
            spec.extend(id.to_le_bytes());
            spec.extend(size.to_le_bytes());
        }
        spec.push(0);
        let mut log = 0u32.to_le_bytes().to_vec();
        log.extend(EV_NO_ACTION.to_le_bytes());
        log.extend([0; 20]);
        log.extend((spec.len() as u32).to_le_bytes());
        log.extend(spec);
        log
    }

    fn event(pcr: u32, event_type: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut e = pcr.to_le_bytes().to_vec();
        e.extend(event_type.to_le_bytes());
        e.extend((digests.len() as u32).to_le_bytes());
        for (id, d) in digests {
            e.extend(id.to_le_bytes());
            e.extend(d);
        }
        e.extend((data.len() as u32).to_le_bytes());
        e.extend(data);
        e
    }

    #[test]
    fn replays_with_startup_locality_and_skips_no_action() {
        let mut log = header(&[(0x000b, 32)]);
        let mut locality = STARTUP_LOCALITY_SIGNATURE.to_vec();
        locality.push(3);
        log.extend(event(0, EV_NO_ACTION, &[(0x000b, vec![0; 32])], &locality));
        log.extend(event(0, 1, &[(0x000b, vec![0xAA; 32])], b"x"));
        log.extend(event(17, 1, &[(0x000b, vec![0xBB; 32])], b"y"));
        let parsed = EventLog::parse(&log).unwrap();
        assert_eq!(parsed.startup_locality(), Some(3));
        assert_eq!(parsed.events().len(), 3);
        let replayed = parsed.replay();
        let bank = &replayed[&HashAlg::Sha256];
        let mut init0 = vec![0u8; 32];
        init0[31] = 3;
        let mut buf = init0;
        buf.extend([0xAA; 32]);
        assert_eq!(bank[&0], HashAlg::Sha256.digest(&buf));
        let mut buf = vec![0xff; 32];
        buf.extend([0xBB; 32]);
        assert_eq!(bank[&17], HashAlg::Sha256.digest(&buf));
        assert_eq!(bank.len(), 2);
    }

    #[test]
    fn rejects_malformed_logs() {
        let good = {
            let mut log = header(&[(0x0004, 20), (0x000b, 32)]);
            log.extend(event(
                4,
                1,
                &[(0x0004, vec![1; 20]), (0x000b, vec![2; 32])],
                b"data",
            ));
            log
        };
        EventLog::parse(&good).unwrap();
        assert_eq!(
            EventLog::parse(&good[..good.len() - 1]).unwrap_err().code(),
            "parse.truncated"
        );
        let cases: Vec<Vec<u8>> = vec![
            // one digest missing
            [
                header(&[(0x0004, 20), (0x000b, 32)]),
                event(4, 1, &[(0x000b, vec![2; 32])], b""),
            ]
            .concat(),
            // undeclared bank
            [
                header(&[(0x000b, 32)]),
                event(4, 1, &[(0x000c, vec![2; 48])], b""),
            ]
            .concat(),
            // PCR 24
            [
                header(&[(0x000b, 32)]),
                event(24, 1, &[(0x000b, vec![2; 32])], b""),
            ]
            .concat(),
            // wrong digest size for SHA-256 in the header
            header(&[(0x000b, 20)]),
            // no algorithms
            header(&[]),
        ];
        for case in cases {
            assert_eq!(
                EventLog::parse(&case).unwrap_err().code(),
                "parse.malformed"
            );
        }
        // A SHA-1 (TPM 1.2) log has no Spec ID Event03.
        let mut legacy = good.clone();
        legacy[32..48].copy_from_slice(b"Spec ID Event00\0");
        assert_eq!(
            EventLog::parse(&legacy).unwrap_err().code(),
            "parse.malformed"
        );
        // Huge declared event size.
        let mut huge = header(&[(0x000b, 32)]);
        huge.extend(1u32.to_le_bytes());
        huge.extend(1u32.to_le_bytes());
        huge.extend(1u32.to_le_bytes());
        huge.extend(0x000bu16.to_le_bytes());
        huge.extend([0; 32]);
        huge.extend(u32::MAX.to_le_bytes());
        assert_eq!(
            EventLog::parse(&huge).unwrap_err().code(),
            "parse.malformed"
        );
    }
}
