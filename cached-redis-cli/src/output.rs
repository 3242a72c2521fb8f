//! How things are shown: durations, sizes, dates, aligned tables, and
//! the checklist markers, colored only for a terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A checklist line's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// Whether to color the markers: stdout is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn detect() -> Style {
        Style {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// `[ ok ]`, `[warn]`, `[FAIL]`: readable without color, in a log, or
    /// through a pipe.
    pub fn marker(self, status: Status) -> String {
        let (text, color) = match status {
            Status::Ok => ("[ ok ]", "32"),
            Status::Warn => ("[warn]", "33"),
            Status::Fail => ("[FAIL]", "31;1"),
        };
        if self.color {
            format!("\x1b[{color}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `950ms`, `42s`, `3m 05s`, `2h 07m`, `3d 04h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A latency: `0.42 ms`, `12.3 ms`, `1.20 s`.
pub fn latency(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `914 B`, `1.2 KiB`, `64.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Unix milliseconds as RFC 3339 UTC, `2026-12-06T14:09:28.123Z`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), for days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which side a column's cells align to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Rows as aligned columns, two spaces apart, trailing blanks trimmed.
pub fn table(header: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let width = |column: usize| {
        rows.iter()
            .filter_map(|row| row.get(column))
            .map(|cell| cell.chars().count())
            .chain(header.get(column).map(|cell| cell.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let width = widths.get(column).copied().unwrap_or(0);
            if column > 0 {
                line.push_str("  ");
            }
            let _ = match align.get(column) {
                Some(Align::Right) => write!(line, "{cell:>width$}"),
                _ => write!(line, "{cell:<width$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `label  value` lines with the labels padded to one width.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {value}\n"))
        .collect()
}

/// A bar of `#` for a histogram: `share` of `width` cells, at least one
/// for any non-zero share.
pub fn bar(part: u64, whole: u64, width: usize) -> String {
    if part == 0 || whole == 0 {
        return String::new();
    }
    let cells = ((part as f64 / whole as f64) * width as f64).round() as usize;
    "#".repeat(cells.clamp(1, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(950)), "950ms");
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(7620)), "2h 07m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 04h"
        );
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(bytes(914), "914 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(1234), "1,234");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_796_566_218_000), "2026-12-06T14:10:18.000Z");
    }

    #[test]
    fn tables_align() {
        let text = table(
            &["KEY", "BYTES"],
            &[Align::Left, Align::Right],
            &[
                vec!["a".to_owned(), "5".to_owned()],
                vec!["long".to_owned(), "1000".to_owned()],
            ],
        );
        assert_eq!(text, "KEY   BYTES\na         5\nlong   1000\n");
    }

    #[test]
    fn markers_are_ascii_without_color() {
        let plain = Style { color: false };
        assert_eq!(plain.marker(Status::Ok), "[ ok ]");
        assert_eq!(plain.marker(Status::Warn), "[warn]");
        assert_eq!(plain.marker(Status::Fail), "[FAIL]");
        assert_eq!(bar(1, 100, 30), "#");
        assert_eq!(bar(50, 100, 30).len(), 15);
    }
}

/// What a command prints, and whether it found something wrong: a
/// finding goes to stderr as one line and makes the exit code 1.
#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub finding: Option<String>,
}

impl Report {
    pub fn ok(text: String) -> Report {
        Report {
            text,
            finding: None,
        }
    }
}

/// Pretty JSON and a newline.
pub fn json(value: &impl serde::Serialize) -> Result<String, crate::error::CliError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|err| crate::error::CliError::Output(err.into()))
}
