//! Resource quantities (`500m`, `1`, `512Mi`, `1.5Gi`, `2e3`): parsed into nano-units so quota
//! arithmetic is exact, and formatted back the way the real server prints them in messages.

const NANO: i128 = 1_000_000_000;

/// Parses a quantity into nano-units (`"500m"` → 500_000_000). None when malformed.
pub(crate) fn parse(q: &str) -> Option<i128> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (mul_num, mul_den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, NANO),
        "u" => (1, 1_000_000),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..].parse().ok()?;
            (10i128.checked_pow(exp)?, 1)
        }
        _ => return None,
    };
    let negative = number.starts_with('-');
    let number = number.trim_start_matches(['+', '-']);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let int: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    // The fraction, in nano-units, truncated past nine digits.
    let mut frac_nanos: i128 = 0;
    let mut scale = NANO;
    for c in frac_part.chars().take(9) {
        scale /= 10;
        frac_nanos += i128::from(c.to_digit(10)?) * scale;
    }
    let nanos = (int * NANO + frac_nanos) * mul_num / mul_den;
    Some(if negative { -nanos } else { nanos })
}

/// Formats nano-units as a short quantity: `500m`, `2`, `512Mi`, `1500Mi`.
pub(crate) fn format(nanos: i128) -> String {
    if nanos == 0 {
        return "0".to_owned();
    }
    if nanos % NANO != 0 {
        if nanos % 1_000_000 == 0 {
            return format!("{}m", nanos / 1_000_000);
        }
        return format!("{nanos}n");
    }
    let units = nanos / NANO;
    for (suffix, size) in [
        ("Ei", 1i128 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if units.abs() >= size && units % size == 0 {
            return format!("{}{suffix}", units / size);
        }
    }
    units.to_string()
}

/// Nano-units of a JSON quantity (string or number).
pub(crate) fn of_value(v: &serde_json::Value) -> Option<i128> {
    match v {
        serde_json::Value::String(s) => parse(s),
        serde_json::Value::Number(n) => parse(&n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("500m"), Some(500_000_000));
        assert_eq!(parse("1"), Some(NANO));
        assert_eq!(parse("0.5"), Some(500_000_000));
        assert_eq!(parse("512Mi"), Some(512 * (1 << 20) * NANO));
        assert_eq!(parse("1e3"), Some(1000 * NANO));
        assert_eq!(parse("bad"), None);
        assert_eq!(format(500_000_000), "500m");
        assert_eq!(format(2 * NANO), "2");
        assert_eq!(format(512 * (1 << 20) * NANO), "512Mi");
        assert_eq!(format(1000 * NANO), "1000");
    }
}
