//! Just enough of the Prometheus text format to read a service's
//! counters: `name{label="value",…} value [timestamp]` lines; comments,
//! blanks and lines that do not parse are skipped.

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `label="value",…}` and what follows the `}`.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once('=')?;
        let mut chars = after.trim_start().strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (at, '"') => break at,
                (_, other) => value.push(other),
            }
        };
        labels.push((name.trim().to_owned(), value));
        rest = &after.trim_start()[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_skips_the_rest() {
        let text = "# TYPE cache_calls_total counter\n\
            cache_calls_total{domain=\"natal\",outcome=\"hit\"} 2\n\
            cache_breaker_state{domain=\"natal\"} 0 1700000000000\n\
            up 1\n\
            weird{label=\"a \\\"quoted\\\" \\\\ value\"} +Inf\n\
            broken{domain=\"natal\" 3\n\
            \n";
        let samples = parse(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "cache_calls_total");
        assert_eq!(samples[0].label("outcome"), Some("hit"));
        assert_eq!(samples[0].value, 2.0);
        assert_eq!(samples[1].value, 0.0);
        assert_eq!(samples[2].labels, []);
        assert_eq!(samples[3].label("label"), Some("a \"quoted\" \\ value"));
        assert!(samples[3].value.is_infinite());
    }
}
