//! Just enough of Kubernetes resource quantities to derive one from another.
//!
//! The guard rails are configured as quantity strings (`500m`, `512Mi`) and the builders derive
//! smaller ones from them (LimitRange defaults, requests below limits). This parses the common
//! forms — CPU as cores or millicores, memory with binary (`Ki`…`Ei`) or decimal (`k`…`E`)
//! suffixes, with an optional decimal fraction — into integers (millicores, bytes), and prints
//! them back canonically. Exotic forms (exponents, `u`/`n` CPU) are refused rather than guessed.

/// CPU in millicores: `500m` → 500, `2` → 2000, `0.5` → 500. `None` for anything else or zero.
pub(crate) fn parse_cpu(s: &str) -> Option<u64> {
    let millis = match s.strip_suffix('m') {
        Some(m) => decimal(m, 1)?,
        None => decimal(s, 1000)?,
    };
    (millis > 0).then_some(millis)
}

/// Memory in bytes: `512Mi`, `1Gi`, `500M`, `1.5Gi`, `1048576`. `None` for anything else or zero.
pub(crate) fn parse_memory(s: &str) -> Option<u64> {
    const SUFFIXES: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (number, unit) = SUFFIXES
        .iter()
        .find_map(|(suffix, unit)| s.strip_suffix(suffix).map(|n| (n, *unit)))
        .unwrap_or((s, 1));
    let bytes = decimal(number, unit)?;
    (bytes > 0).then_some(bytes)
}

/// Millicores printed as Kubernetes does: whole cores without a suffix, else `NNNm`.
pub(crate) fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes printed with the largest binary suffix that divides them exactly.
pub(crate) fn format_memory(bytes: u64) -> String {
    for (suffix, unit) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// `cpu × numerator / denominator`, at least 1m; `None` when `cpu` does not parse.
pub(crate) fn scale_cpu(cpu: &str, numerator: u64, denominator: u64) -> Option<String> {
    let millis = parse_cpu(cpu)?.checked_mul(numerator)? / denominator;
    Some(format_cpu(millis.max(1)))
}

/// `memory × numerator / denominator`, rounded down to a whole KiB when larger (at least 1 MiB);
/// `None` when `memory` does not parse.
pub(crate) fn scale_memory(memory: &str, numerator: u64, denominator: u64) -> Option<String> {
    let bytes = parse_memory(memory)?.checked_mul(numerator)? / denominator;
    let bytes = (bytes / 1024 * 1024).max(1 << 20);
    Some(format_memory(bytes))
}

/// `digits[.digits]` × `unit`, exact to the unit's resolution (extra fraction digits are cut).
fn decimal(s: &str, unit: u64) -> Option<u64> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole = if whole.is_empty() {
        0
    } else {
        whole.parse::<u64>().ok()?.checked_mul(unit)?
    };
    // Fraction digits beyond the 18th cannot matter at u64 resolution.
    let fraction = &fraction[..fraction.len().min(18)];
    let part = if fraction.is_empty() {
        0
    } else {
        let numerator = fraction.parse::<u128>().ok()? * u128::from(unit);
        u64::try_from(numerator / 10u128.pow(fraction.len() as u32)).ok()?
    };
    let value = whole.checked_add(part)?;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_cpu("500m"), Some(500));
        assert_eq!(parse_cpu("2"), Some(2000));
        assert_eq!(parse_cpu("0.5"), Some(500));
        assert_eq!(parse_cpu("1.25"), Some(1250));
        assert_eq!(parse_memory("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_memory("500M"), Some(500_000_000));
        assert_eq!(parse_memory("1024"), Some(1024));
        for bad in ["", "m", "0", "0m", "-1", "1e3", "abc", "1.2.3", "10u", " 1"] {
            assert_eq!(parse_cpu(bad), None, "{bad:?}");
        }
        for bad in ["", "Mi", "0Mi", "-1Mi", "1e9", "12MB", "1.5.Gi"] {
            assert_eq!(parse_memory(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scales_and_prints_canonically() {
        assert_eq!(scale_cpu("500m", 1, 4).as_deref(), Some("125m"));
        assert_eq!(scale_cpu("2", 1, 2).as_deref(), Some("1"));
        assert_eq!(scale_cpu("1m", 1, 4).as_deref(), Some("1m"));
        assert_eq!(scale_memory("512Mi", 1, 4).as_deref(), Some("128Mi"));
        assert_eq!(scale_memory("1Gi", 1, 2).as_deref(), Some("512Mi"));
        assert_eq!(scale_memory("1G", 1, 2).as_deref(), Some("488281Ki"));
        assert_eq!(scale_memory("1Mi", 1, 8).as_deref(), Some("1Mi"));
        assert_eq!(scale_cpu("lots", 1, 2), None);
    }
}
