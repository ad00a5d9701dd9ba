//! PCI function addresses (`DDDD:BB:DD.F`) as sysfs names them.

use std::fmt;
use std::str::FromStr;

/// A PCI function address, `DDDD:BB:DD.F` (domain, bus, device, function), as sysfs names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// A PCI address that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: {reason} (expected DDDD:BB:DD.F, e.g. 0000:01:10.0)")]
pub struct BdfError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn hex_field(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl Bdf {
    /// A function address; `None` if `device > 31` or `function > 7`.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Bdf> {
        (device < 32 && function < 8).then_some(Bdf {
            domain,
            bus,
            device,
            function,
        })
    }

    /// Parses `DDDD:BB:DD.F` or `BB:DD.F` (domain 0), hexadecimal, either case.
    pub fn parse(input: &str) -> Result<Bdf, BdfError> {
        let err = |reason| BdfError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0", *b, *df),
            _ => return Err(err("expected two or three ':'-separated fields")),
        };
        let domain = hex_field(domain, 8).ok_or_else(|| err("domain is not 1 to 8 hex digits"))?;
        let bus = hex_field(bus, 2).ok_or_else(|| err("bus is not 1 or 2 hex digits"))? as u8;
        let (device, function) = devfn.split_once('.').ok_or_else(|| err("missing '.F'"))?;
        let device = hex_field(device, 2).ok_or_else(|| err("device is not 1 or 2 hex digits"))?;
        if device > 0x1f {
            return Err(err("device number above 0x1f"));
        }
        let function = hex_field(function, 1).ok_or_else(|| err("function is not one digit"))?;
        if function > 7 {
            return Err(err("function number above 7"));
        }
        Ok(Bdf {
            domain,
            bus,
            device: device as u8,
            function: function as u8,
        })
    }

    /// PCI domain (segment).
    pub fn domain(&self) -> u32 {
        self.domain
    }
    /// Bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }
    /// Device number (0..=31).
    pub fn device(&self) -> u8 {
        self.device
    }
    /// Function number (0..=7).
    pub fn function(&self) -> u8 {
        self.function
    }
}

impl FromStr for Bdf {
    type Err = BdfError;
    fn from_str(s: &str) -> Result<Bdf, BdfError> {
        Bdf::parse(s)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use super::*;

    #[test]
    fn bdf_round_trips_and_normalises() {
        assert_eq!(
            Bdf::parse("0000:01:10.0").unwrap().to_string(),
            "0000:01:10.0"
        );
        assert_eq!(Bdf::parse("01:10.1").unwrap().to_string(), "0000:01:10.1");
        assert_eq!(
            Bdf::parse("ABCD:Ef:1F.7").unwrap().to_string(),
            "abcd:ef:1f.7"
        );
        assert_eq!(
            Bdf::parse("10000:00:02.0").unwrap().to_string(),
            "10000:00:02.0"
        );
        let b = Bdf::parse("0:1:2.3").unwrap();
        assert_eq!(
            (b.domain(), b.bus(), b.device(), b.function()),
            (0, 1, 2, 3)
        );
        assert_eq!(Bdf::new(0, 1, 32, 0), None);
        assert_eq!(Bdf::new(0, 1, 31, 8), None);
        assert_eq!(
            "0000:01:10.0".parse::<Bdf>().unwrap(),
            Bdf::new(0, 1, 0x10, 0).unwrap()
        );
    }

    #[test]
    fn bad_bdfs_name_the_input_and_the_reason() {
        for (input, reason) in [
            ("", "expected two or three ':'-separated fields"),
            ("0000:01:10", "missing '.F'"),
            ("0000:01:20.0", "device number above 0x1f"),
            ("0000:01:10.8", "function number above 7"),
            ("0000:01:10.10", "function is not one digit"),
            ("0000:+1:10.0", "bus is not 1 or 2 hex digits"),
            ("0000:001:10.0", "bus is not 1 or 2 hex digits"),
            ("x:01:10.0", "domain is not 1 to 8 hex digits"),
            (" 0000:01:10.0", "domain is not 1 to 8 hex digits"),
            (
                "0000:01:10.0:0",
                "expected two or three ':'-separated fields",
            ),
            ("0000:01:.0", "device is not 1 or 2 hex digits"),
        ] {
            let e = Bdf::parse(input).unwrap_err();
            assert_eq!(e.input, input);
            assert_eq!(e.reason, reason, "{input:?}");
            assert!(e.to_string().contains(&format!("{input:?}")));
        }
    }
}
