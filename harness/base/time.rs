//! Durations and timestamps as reports show them.

/// Formats milliseconds the way people read them: `812 ms`, `2.4 s`, `1 m 05 s`.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} m {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Wall-clock now, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ms(812), "812 ms");
        assert_eq!(human_ms(2400), "2.4 s");
        assert_eq!(human_ms(65_000), "1 m 05 s");
    }
}
