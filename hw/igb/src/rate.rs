//! The 82576's per-queue transmit rate limiter encoding (RTTBCNRC): a rate factor
//! `link_speed / rate` in 14.14 fixed point, enabled by RS_ENA. The PF selects the queue with
//! RTTDQSEL first. One definition for the model (which applies it) and the PF agent (which
//! programs it the way Linux igb's `ndo_set_vf_bw` does).

use crate::regs::{self, RTTBCNRC};

/// Fractional bits of the rate factor.
pub const RATE_FACTOR_FRACTION_BITS: u32 = 14;
/// A rate factor of 1.0 (the queue may use the whole link).
pub const RATE_FACTOR_ONE: u32 = 1 << RATE_FACTOR_FRACTION_BITS;
/// Largest rate factor RTTBCNRC holds (RF_INT and RF_DEC all ones: just under 16384).
pub const RATE_FACTOR_MAX: u32 = (1 << 28) - 1;
/// The RTTBCNRM value Linux igb writes before every RTTBCNRC (MMW size for 9728-byte jumbo
/// frames).
pub const LINUX_RTTBCNRM: u32 = 0x14;
/// Bytes per RTTBCNRM.MMW_SIZE unit (inferred: Linux's 0x14 "for 9728-byte jumbo" is the
/// smallest multiple of 512 bytes above one jumbo frame, plus one).
pub const MMW_UNIT_BYTES: u64 = 512;

/// The RTTBCNRC word for limiting a queue to `rate_mbps` on a `link_mbps` link, computed as
/// Linux igb does: integer part `link / rate`, fraction `(link mod rate) · 2^14 / rate`; a rate
/// of 0 is "no limit" (RS_ENA clear, word 0). A rate above the link gives a factor below 1.0
/// (RF_INT 0); callers refuse that before writing (see the PF agent).
pub fn rttbcnrc_for(link_mbps: u32, rate_mbps: u32) -> u32 {
    if rate_mbps == 0 {
        return 0;
    }
    let rf_int = link_mbps / rate_mbps;
    let rem = u64::from(link_mbps - rf_int * rate_mbps);
    let rf_dec = (rem << RATE_FACTOR_FRACTION_BITS) / u64::from(rate_mbps);
    // Both parts are masked to their fields (a factor >= 16384 keeps its low bits, as Linux).
    regs::value(
        RTTBCNRC::RS_ENA::SET
            + RTTBCNRC::RF_INT.val(rf_int & 0x3FFF)
            + RTTBCNRC::RF_DEC.val(rf_dec as u32 & 0x3FFF),
    )
}

/// The rate factor (14.14) of an RTTBCNRC word, or `None` when RS_ENA is clear (no limit).
pub fn rate_factor(rttbcnrc: u32) -> Option<u32> {
    let v = regs::view::<RTTBCNRC::Register>(rttbcnrc);
    v.is_set(RTTBCNRC::RS_ENA)
        .then(|| (v.read(RTTBCNRC::RF_INT) << RATE_FACTOR_FRACTION_BITS) | v.read(RTTBCNRC::RF_DEC))
}

/// The rate (Mb/s, rounded down) an RTTBCNRC word allows on a `link_mbps` link, or `None` when
/// the limiter is off. A factor below 1.0 allows the whole link.
pub fn limited_rate_mbps(link_mbps: u32, rttbcnrc: u32) -> Option<u32> {
    let rf = rate_factor(rttbcnrc)?.max(RATE_FACTOR_ONE);
    Some(((u64::from(link_mbps) << RATE_FACTOR_FRACTION_BITS) / u64::from(rf)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_encoding_of_common_rates() {
        // 1000 / 100 = 10.0
        assert_eq!(rttbcnrc_for(1000, 100), 0x8000_0000 | (10 << 14));
        // 1000 / 300 = 3.333…: fraction 100 · 16384 / 300 = 5461
        assert_eq!(rttbcnrc_for(1000, 300), 0x8000_0000 | (3 << 14) | 5461);
        assert_eq!(rttbcnrc_for(1000, 0), 0);
        assert_eq!(rate_factor(0), None);
        assert_eq!(rate_factor(rttbcnrc_for(1000, 100)), Some(10 << 14));
        assert_eq!(limited_rate_mbps(1000, rttbcnrc_for(1000, 300)), Some(300));
        assert_eq!(
            limited_rate_mbps(1000, rttbcnrc_for(1000, 1000)),
            Some(1000)
        );
        // Above the link: RF_INT 0, the factor is clamped to 1.0 by the reader.
        assert_eq!(
            limited_rate_mbps(1000, rttbcnrc_for(1000, 2000)),
            Some(1000)
        );
    }

    #[test]
    fn every_rate_round_trips_within_one_mbps() {
        for link in [1000u32, 10_000] {
            for rate in 1..=link {
                let back = limited_rate_mbps(link, rttbcnrc_for(link, rate)).unwrap_or(0);
                assert!(
                    back <= rate && rate - back <= 1 + rate / 4096,
                    "{link} {rate} {back}"
                );
            }
        }
    }
}
