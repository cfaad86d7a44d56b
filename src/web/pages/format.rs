//! Small display helpers shared by the pages (numbers, durations, names).

/// A duration in microseconds for people: `850 µs`, `12.3 ms`, `4.20 s`.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

pub fn opt_micros(us: Option<f64>) -> String {
    us.map(micros).unwrap_or_else(|| "–".to_string())
}

/// A rate per second, with precision that suits its size.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else if per_sec >= 0.1 {
        format!("{per_sec:.2}/s")
    } else {
        format!("{:.2}/min", per_sec * 60.0)
    }
}

/// A rate as a number per second, with no unit (a table column names it once): three
/// significant digits or so, never switching units between rows.
pub fn per_sec(per_sec: f64) -> String {
    if per_sec >= 10.0 {
        format!("{per_sec:.0}")
    } else if per_sec >= 0.1 {
        format!("{per_sec:.2}")
    } else {
        format!("{per_sec:.4}")
    }
}

/// A timestamp as `2026-11-27 09:00:01.234` (UTC).
pub fn time(unix_nanos: u64) -> String {
    let t = crate::model::window::rfc3339(unix_nanos);
    let t = t.replace('T', " ").trim_end_matches('Z').to_string();
    match t.find('.') {
        Some(dot) => t[..(dot + 4).min(t.len())].to_string(),
        None => t,
    }
}

/// A JSON attribute value as text: strings bare, the rest as JSON.
pub fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `(key, value)` pairs of a JSON object, in its order.
pub fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_well() {
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(12_345.0), "12.3 ms");
        assert_eq!(micros(4_200_000.0), "4.20 s");
        assert_eq!(rate(0.005), "0.30/min");
        assert_eq!(rate(2.0), "2.00/s");
        assert_eq!(time(1_795_755_051_328_646_963), "2026-11-27 04:50:51.328");
    }
}
