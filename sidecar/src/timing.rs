//! When to refresh and how long to wait after a failure: pure functions of the configuration
//! and a random draw, so they can be tested without clocks.

use std::time::Duration;

use crate::config::TimingConfig;

/// A uniform draw in `[0, 1)` from the system CSPRNG (jitter needs no more, but the sidecar
/// has no other randomness source to keep track of).
pub fn unit_random() -> f64 {
    let bytes = attest_proto::crypto::random::<8>().unwrap_or([0x80; 8]);
    // 53 random bits, the precision of an f64 mantissa.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// How long after issuance to refresh a token that lives `lifetime`: `refresh_at` of the
/// lifetime, moved by up to ±`jitter`/2 of it (`draw` in `[0, 1)`), so a fleet started at once
/// does not refresh at once.
pub fn refresh_after(lifetime: Duration, timing: &TimingConfig, draw: f64) -> Duration {
    let fraction = timing.refresh_at + timing.jitter * (draw.clamp(0.0, 1.0) - 0.5);
    lifetime.mul_f64(fraction.clamp(0.05, 0.95))
}

/// The wait before retry number `failures` (1 for the first): "full jitter" exponential
/// backoff, a uniform draw below `min(max, initial · 2^(failures-1))`, never under 100 ms.
pub fn backoff(failures: u32, timing: &TimingConfig, draw: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let ceiling =
        (timing.backoff_initial_secs * f64::from(1u32 << exponent)).min(timing.backoff_max_secs);
    Duration::from_secs_f64((ceiling * draw.clamp(0.0, 1.0)).max(0.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_lands_around_half_life_within_the_jitter() {
        let t = TimingConfig::default();
        let life = Duration::from_secs(600);
        assert_eq!(refresh_after(life, &t, 0.5), Duration::from_secs(300));
        assert_eq!(refresh_after(life, &t, 0.0), Duration::from_secs(270));
        assert!(refresh_after(life, &t, 0.999_999) <= Duration::from_secs(330));
        for _ in 0..1000 {
            let d = refresh_after(life, &t, unit_random());
            assert!((270..=330).contains(&d.as_secs()), "{d:?}");
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_and_stays_jittered() {
        let t = TimingConfig::default();
        assert_eq!(backoff(1, &t, 0.999_999).as_secs_f64().round(), 1.0);
        assert_eq!(backoff(4, &t, 0.999_999).as_secs_f64().round(), 8.0);
        assert_eq!(backoff(30, &t, 0.999_999).as_secs_f64().round(), 30.0);
        assert_eq!(backoff(u32::MAX, &t, 0.999_999).as_secs_f64().round(), 30.0);
        assert_eq!(backoff(3, &t, 0.0), Duration::from_millis(100));
        let draws: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| backoff(10, &t, unit_random()).as_millis() as u64)
            .collect();
        assert!(draws.len() > 40, "full jitter spreads retries: {draws:?}");
    }
}
