//! SVG bar charts of benchmark results, for people who would rather look than read.
//!
//! Every benchmark writes its results to `target/bench/NAME.json`, in this shape:
//!
//! ```json
//! { "title": "…", "better": "higher" | "lower", "reference": 1.0,
//!   "groups": [ { "name": "…", "bars": [ { "label": "…", "value": 1.12, "text": "1.12×", "target": 1.0 } ] } ] }
//! ```
//!
//! (`reference`, a dashed line such as 1.0× for ratios, and each bar's `target`, a red tick, are
//! optional). `cargo xtask bench NAME` then draws `docs/bench/NAME.svg`, which the root README shows.
//! A bar that misses its target is red.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

const WIDTH: f64 = 860.0;
const LABEL: f64 = 300.0;
/// Pixels of the longest bar; the rest of the width takes its text.
const AREA: f64 = 330.0;
const BAR: f64 = 24.0;

/// Draws `target/bench/{name}.json` into `docs/bench/{name}.svg`; returns the SVG's path.
pub(crate) fn draw(root: &Path, name: &str) -> Result<PathBuf> {
    let input = root.join("target/bench").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&input)
        .with_context(|| format!("the bench wrote no results to {}", input.display()))?;
    let chart: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", input.display()))?;
    let svg = render(&chart).with_context(|| format!("drawing {}", input.display()))?;
    let output = root.join("docs/bench").join(format!("{name}.svg"));
    std::fs::create_dir_all(output.parent().expect("docs/bench has a parent"))?;
    std::fs::write(&output, svg)?;
    Ok(output)
}

fn render(chart: &Value) -> Result<String> {
    let title = chart["title"].as_str().context("no title")?;
    let lower_is_better = match chart["better"].as_str() {
        Some("lower") => true,
        Some("higher") | None => false,
        Some(other) => bail!("`better` must be higher or lower, got {other:?}"),
    };
    let reference = chart["reference"].as_f64();
    let groups = chart["groups"].as_array().context("no groups")?;
    let bars = |g: &Value| g["bars"].as_array().cloned().unwrap_or_default();
    let max = groups
        .iter()
        .flat_map(bars)
        .flat_map(|b| [b["value"].as_f64(), b["target"].as_f64()])
        .flatten()
        .chain(reference)
        .fold(f64::MIN_POSITIVE, f64::max);
    let x = |v: f64| LABEL + AREA * v.max(0.0) / max;
    let mut body = String::new();
    let mut y = 44.0;
    for group in groups {
        if let Some(name) = group["name"].as_str() {
            writeln!(
                body,
                r#"<text x="10" y="{y}" font-weight="bold">{}</text>"#,
                escape(name)
            )?;
            y += 10.0;
        }
        for bar in bars(group) {
            let label = bar["label"].as_str().context("a bar with no label")?;
            let value = bar["value"].as_f64().context("a bar with no value")?;
            let text = bar["text"].as_str().unwrap_or_default();
            let target = bar["target"].as_f64();
            let missed = target.is_some_and(|t| {
                if lower_is_better {
                    value > t
                } else {
                    value < t
                }
            });
            let color = if missed { "#e53e3e" } else { "#2b6cb0" };
            let (w, ty) = (x(value) - LABEL, y + 17.0);
            writeln!(
                body,
                r#"<text x="10" y="{ty}">{}</text><rect x="{LABEL}" y="{y}" width="{w:.1}" height="{h}" fill="{color}"/><text x="{tx:.1}" y="{ty}">{}</text>"#,
                escape(label),
                escape(text),
                h = BAR - 5.0,
                tx = x(value) + 6.0,
            )?;
            if let Some(t) = target {
                writeln!(
                    body,
                    r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y2}" stroke="#c53030" stroke-width="2"/>"##,
                    x = x(t),
                    y1 = y - 2.0,
                    y2 = y + BAR - 3.0,
                )?;
            }
            y += BAR;
        }
        y += 20.0;
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15">{}</text>"#,
        escape(&format!(
            "{title} ({} is better{})",
            if lower_is_better { "shorter" } else { "longer" },
            if groups
                .iter()
                .flat_map(bars)
                .any(|b| b["target"].is_number())
            {
                "; red tick: target"
            } else {
                ""
            }
        )),
    );
    svg.push('\n');
    if let Some(r) = reference {
        writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="32" y2="{y}" stroke="#718096" stroke-dasharray="4"/>"##,
            x = x(r),
        )?;
    }
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_bars_targets_and_a_reference() {
        let chart = serde_json::json!({
            "title": "a & b",
            "better": "lower",
            "reference": 1.0,
            "groups": [{ "name": "one", "bars": [
                { "label": "fast", "value": 0.9, "text": "0.90×", "target": 1.1 },
                { "label": "slow <x>", "value": 1.3, "text": "1.30×", "target": 1.1 },
            ]}],
        });
        let svg = render(&chart).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &amp; b (shorter is better; red tick: target)"));
        assert!(svg.contains("slow &lt;x&gt;"));
        assert_eq!(
            svg.matches("#e53e3e").count(),
            1,
            "one bar misses its target"
        );
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(render(&serde_json::json!({ "groups": [] })).is_err());
    }
}
