//! The closing table, the per-second figures (CSV or JSON), and the plot.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use cached_redis::CacheStats;

use crate::record::{Second, fallbacks, quantile};

/// The whole run, summed.
pub struct Summary {
    pub seconds: f64,
    pub calls: u64,
    /// The runtime's counters over the run.
    pub stats: CacheStats,
    pub latencies: Vec<u32>,
    /// Redis commands per call, over the seconds the server could tell.
    pub redis_commands: Option<f64>,
}

/// Commands per call over the seconds whose count is known (a paused or
/// killed server tells nothing).
fn watched(seconds: &[Second]) -> Option<f64> {
    let (commands, calls) = seconds
        .iter()
        .filter_map(|s| Some((s.redis_commands?, s.calls())))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    (calls > 0).then(|| commands as f64 / calls as f64)
}

impl Summary {
    /// `stats`: the run's runtime's counters at the end (it started at zero).
    pub fn of(seconds: &[Second], stats: CacheStats, elapsed: f64) -> Summary {
        let mut latencies: Vec<u32> = seconds
            .iter()
            .flat_map(|s| s.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        Summary {
            seconds: elapsed,
            calls: latencies.len() as u64,
            stats,
            redis_commands: watched(seconds),
            latencies,
        }
    }

    pub fn table(&self) -> String {
        let q = |q: f64| quantile(&self.latencies, q).map_or("-".into(), micros);
        let ratio = self
            .stats
            .hit_ratio()
            .map_or("-".into(), |ratio| format!("{ratio:.3}"));
        let trips = self
            .redis_commands
            .map_or("- (server not watched)".into(), |per_call| {
                format!("{per_call:.3}")
            });
        let mut out = String::new();
        let rows = [
            ("duration", format!("{:.1} s", self.seconds)),
            ("calls", self.calls.to_string()),
            (
                "ops/s",
                format!("{:.0}", self.calls as f64 / self.seconds.max(f64::EPSILON)),
            ),
            ("hit ratio", ratio),
            ("computes", self.stats.computes.to_string()),
            ("latency p50", q(0.50)),
            ("latency p90", q(0.90)),
            ("latency p99", q(0.99)),
            ("latency max", q(1.0)),
            ("errors", self.stats.redis_errors.to_string()),
            ("fallbacks", fallbacks(&self.stats).to_string()),
            ("Redis round trips per call", trips),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<28}{value:>14}");
        }
        out
    }
}

fn micros(us: u32) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", f64::from(us) / 1e3),
        _ => format!("{:.2} s", f64::from(us) / 1e6),
    }
}

/// One row per second: CSV, or JSON lines when `path` ends in `.json`.
pub fn write_figures(path: &Path, seconds: &[Second]) -> std::io::Result<()> {
    let json = path.extension().is_some_and(|ext| ext == "json");
    let mut out = String::new();
    if !json {
        out.push_str("second,calls,hit_ratio,p50_us,p90_us,p99_us,max_us,computes,errors,fallbacks,redis_commands\n");
    }
    let opt = |v: Option<u32>| v.map_or(String::new(), |v| v.to_string());
    for (i, s) in seconds.iter().enumerate() {
        let l = &s.latencies;
        let ratio = s.hit_ratio().map_or(String::new(), |r| format!("{r:.4}"));
        let cmds = s.redis_commands.map_or(String::new(), |c| c.to_string());
        let fields = [
            i.to_string(),
            s.calls().to_string(),
            ratio,
            opt(quantile(l, 0.5)),
            opt(quantile(l, 0.9)),
            opt(quantile(l, 0.99)),
            opt(quantile(l, 1.0)),
            s.stats.computes.to_string(),
            s.stats.redis_errors.to_string(),
            fallbacks(&s.stats).to_string(),
            cmds,
        ];
        if json {
            const NAMES: [&str; 11] = [
                "second",
                "calls",
                "hit_ratio",
                "p50_us",
                "p90_us",
                "p99_us",
                "max_us",
                "computes",
                "errors",
                "fallbacks",
                "redis_commands",
            ];
            let pairs: Vec<String> = NAMES
                .iter()
                .zip(&fields)
                .map(|(name, value)| {
                    format!(
                        "\"{name}\":{}",
                        if value.is_empty() { "null" } else { value }
                    )
                })
                .collect();
            let _ = writeln!(out, "{{{}}}", pairs.join(","));
        } else {
            let _ = writeln!(out, "{}", fields.join(","));
        }
    }
    std::fs::write(path, out)
}

/// Latency (p50, p99, ms, log scale) above, hit ratio below, per second;
/// the fault's window shaded. SVG: no fonts needed to write it.
pub fn plot(
    path: &Path,
    seconds: &[Second],
    fault: Option<(f64, f64, &str)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let end = seconds.len().max(1) as f64;
    let at = |i: usize| i as f64 + 0.5;
    let ms = |us: u32| (f64::from(us) / 1e3).max(0.001);
    let p50: Vec<(f64, f64)> = seconds
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((at(i), ms(quantile(&s.latencies, 0.5)?))))
        .collect();
    let p99: Vec<(f64, f64)> = seconds
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((at(i), ms(quantile(&s.latencies, 0.99)?))))
        .collect();
    let max: Vec<(f64, f64)> = seconds
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((at(i), ms(quantile(&s.latencies, 1.0)?))))
        .collect();
    let highest = max.iter().map(|&(_, v)| v).fold(1.0, f64::max) * 2.0;
    let lowest = p50
        .iter()
        .map(|&(_, v)| v)
        .fold(highest, f64::min)
        .max(0.001)
        / 2.0;

    let mut latency = ChartBuilder::on(&top)
        .caption("latency per second (ms, log scale)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, (lowest..highest).log_scale())?;
    latency.configure_mesh().x_desc("second").draw()?;
    if let Some((from, to, label)) = fault {
        latency
            .draw_series([Rectangle::new(
                [(from, lowest), (to, highest)],
                RGBColor(255, 200, 200).filled(),
            )])?
            .label(label)
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 15, y + 5)],
                    RGBColor(255, 200, 200).filled(),
                )
            });
    }
    latency
        .draw_series(LineSeries::new(p50, &BLUE))?
        .label("p50")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLUE));
    latency
        .draw_series(LineSeries::new(p99, &RED))?
        .label("p99")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED));
    let grey = RGBColor(150, 150, 150);
    latency
        .draw_series(LineSeries::new(max, grey))?
        .label("max")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], grey));
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut ratio = ChartBuilder::on(&bottom)
        .caption("hit ratio per second", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, 0f64..1.05)?;
    ratio.configure_mesh().x_desc("second").draw()?;
    if let Some((from, to, _)) = fault {
        ratio.draw_series([Rectangle::new(
            [(from, 0.0), (to, 1.05)],
            RGBColor(255, 200, 200).filled(),
        )])?;
    }
    let hits: Vec<(f64, f64)> = seconds
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((at(i), s.hit_ratio()?)))
        .collect();
    ratio.draw_series(LineSeries::new(hits, &GREEN))?;
    root.present()?;
    Ok(())
}
