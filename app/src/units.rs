//! The units previewd reads from people: Kubernetes resource quantities and durations. A leaf
//! module — the install's settings (`config.rs`), the repositories' `.github/preview.yml`
//! (`previews/repo_config.rs`) and the cluster objects (`cluster/`) all use this one parser, so
//! a value means the same everywhere.
//!
//! Quantities follow Kubernetes' grammar: a decimal number with an optional fraction, then a
//! binary suffix (`Ki` … `Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`)
//! or a decimal exponent (`1e3`, `5E-1`). Like the API server, CPU is rounded up to whole
//! millicores and memory up to whole bytes; zero, negative and out-of-range values are refused.

use std::time::Duration;

/// A resource quantity: the text as written (what is sent to Kubernetes) and its value in the
/// unit previewd compares in (millicores for CPU, bytes for memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub text: String,
    pub value: u64,
}

impl Quantity {
    /// A CPU quantity (`500m`, `1`, `0.5`, `2.5`, `100000u`) in millicores.
    pub fn cpu(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        let millis = quantity(text, 1000)
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("cpu {raw:?} must be a CPU quantity such as 250m, 1 or 0.5"))?;
        Ok(Self {
            text: text.to_owned(),
            value: millis,
        })
    }

    /// A memory quantity (`512Mi`, `1Gi`, `1Ti`, `500M`, `1e9`, `1048576`) in bytes.
    pub fn memory(raw: &str) -> Result<Self, String> {
        let text = raw.trim();
        let bytes = quantity(text, 1).filter(|v| *v > 0).ok_or_else(|| {
            format!("memory {raw:?} must be a memory quantity such as 256Mi, 1Gi or 500M")
        })?;
        Ok(Self {
            text: text.to_owned(),
            value: bytes,
        })
    }
}

/// `text` as a Kubernetes quantity, times `scale`, rounded up to an integer; `None` when it is
/// not a quantity or does not fit.
fn quantity(text: &str, scale: u128) -> Option<u64> {
    // Split number and suffix: the number is digits with at most one '.'.
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || whole.len() + fraction.len() > 30 {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().ok()?;
    // value = mantissa / 10^fraction × base^exponent
    let (numerator_factor, denominator_factor): (u128, u128) = match suffix {
        "" => (1, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            if !(-18..=18).contains(&e) {
                return None;
            }
            let power = 10u128.pow(e.unsigned_abs());
            if e >= 0 { (power, 1) } else { (1, power) }
        }
        _ => return None,
    };
    let numerator = mantissa.checked_mul(numerator_factor)?.checked_mul(scale)?;
    let denominator = 10u128
        .checked_pow(u32::try_from(fraction.len()).ok()?)?
        .checked_mul(denominator_factor)?;
    u64::try_from(numerator.div_ceil(denominator)).ok()
}

/// Millicores printed as Kubernetes does: whole cores without a suffix, else `NNNm`.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes printed with the largest binary suffix that divides them exactly.
pub fn format_memory(bytes: u64) -> String {
    for (suffix, unit) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// `cpu × numerator / denominator`, at least 1m; `None` when `cpu` is not a CPU quantity.
pub fn scale_cpu(cpu: &str, numerator: u64, denominator: u64) -> Option<String> {
    let millis = Quantity::cpu(cpu).ok()?.value.checked_mul(numerator)? / denominator;
    Some(format_cpu(millis.max(1)))
}

/// `memory × numerator / denominator`, rounded down to a whole KiB (at least 1 MiB); `None`
/// when `memory` is not a memory quantity.
pub fn scale_memory(memory: &str, numerator: u64, denominator: u64) -> Option<String> {
    let bytes = Quantity::memory(memory)
        .ok()?
        .value
        .checked_mul(numerator)?
        / denominator;
    let bytes = (bytes / 1024 * 1024).max(1 << 20);
    Some(format_memory(bytes))
}

/// Parses a duration such as `90s`, `3m`, `1h30m`, `72h`, `2d`, or bare seconds (`180`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let bad = || format!("must be a duration such as 90s, 3m, 1h30m or 2d, got {raw:?}");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(s: &str) -> Option<u64> {
        Quantity::cpu(s).ok().map(|q| q.value)
    }

    fn memory(s: &str) -> Option<u64> {
        Quantity::memory(s).ok().map(|q| q.value)
    }

    #[test]
    fn quantities_as_kubernetes_reads_them() {
        assert_eq!(cpu("500m"), Some(500));
        assert_eq!(cpu("2"), Some(2000));
        assert_eq!(cpu("0.5"), Some(500));
        assert_eq!(cpu("1.25"), Some(1250));
        assert_eq!(cpu("100000u"), Some(100));
        assert_eq!(cpu("1e3m"), None, "one suffix only");
        assert_eq!(cpu("1e-1"), Some(100));
        assert_eq!(cpu("0.0001"), Some(1), "rounded up to a millicore");
        assert_eq!(memory("512Mi"), Some(512 << 20));
        assert_eq!(memory("1.5Gi"), Some(3 << 29));
        assert_eq!(memory("1Ti"), Some(1 << 40));
        assert_eq!(memory("2Pi"), Some(2 << 50));
        assert_eq!(memory("500M"), Some(500_000_000));
        assert_eq!(memory("1e9"), Some(1_000_000_000));
        assert_eq!(memory("1024"), Some(1024));
        assert_eq!(memory(" 1Gi "), Some(1 << 30));
        for bad in [
            "", "m", "0", "0m", "-1", "abc", "1.2.3", "10x", "1 Gi", "1e99",
        ] {
            assert_eq!(cpu(bad), None, "{bad:?}");
        }
        for bad in ["", "Mi", "0Mi", "-1Mi", "12MB", "1.5.Gi", "16Ei"] {
            assert_eq!(memory(bad), None, "{bad:?}");
        }
        assert_eq!(Quantity::memory("1Ti").unwrap().text, "1Ti");
    }

    #[test]
    fn scales_and_prints_canonically() {
        assert_eq!(scale_cpu("500m", 1, 4).as_deref(), Some("125m"));
        assert_eq!(scale_cpu("2", 1, 2).as_deref(), Some("1"));
        assert_eq!(scale_cpu("1m", 1, 4).as_deref(), Some("1m"));
        assert_eq!(scale_memory("512Mi", 1, 4).as_deref(), Some("128Mi"));
        assert_eq!(scale_memory("1Gi", 1, 2).as_deref(), Some("512Mi"));
        assert_eq!(scale_memory("1.5Gi", 1, 2).as_deref(), Some("768Mi"));
        assert_eq!(scale_memory("1G", 1, 2).as_deref(), Some("488281Ki"));
        assert_eq!(scale_memory("1Ti", 1, 4).as_deref(), Some("256Gi"));
        assert_eq!(scale_memory("1Mi", 1, 8).as_deref(), Some("1Mi"));
        assert_eq!(scale_cpu("lots", 1, 2), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("180"), Ok(Duration::from_secs(180)));
        for bad in ["", "3 minutes", "0s", "1w", "m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
