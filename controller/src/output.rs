//! Human tables by default, one JSON document with `--json`.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// Global output options.
#[derive(Clone, Debug)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints `value` as JSON, or runs `human` to print it for people.
    pub fn print(&self, value: &Value, human: impl FnOnce()) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).expect("json"));
        } else {
            human();
        }
    }
}

/// A table with a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub fn time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::time(1_795_219_200_123), "2026-11-21T00:00:00.123Z");
    }
}
