//! `--plot FILE.svg`: the latency percentile curves of a run, as hand-written SVG;
//! for a soak, below them, p99 latency and server RSS per interval over time.

use crate::report::{Report, Series, hists, ms, series};

fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&x| x >= v)
        .unwrap_or(10.0 * p)
}

/// The latency percentile curves as an SVG (`--plot FILE.svg`): x is the percentile
/// on the usual log scale (90%, 99%, 99.9%...), y the latency in ms.
pub fn svg(r: &Report) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 500.0;
    const L: f64 = 80.0;
    const R: f64 = 250.0;
    const T: f64 = 50.0;
    const B: f64 = 60.0;
    const COLORS: [&str; 7] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    ];
    let series = hists(&r.stats);
    let xmax = series
        .iter()
        .map(|(_, h)| (h.count() as f64).log10().clamp(1.0, 5.0))
        .fold(1.0, f64::max)
        .ceil();
    let ymax = nice_ceil(
        series
            .iter()
            .map(|(_, h)| h.0.max() as f64 / 1000.0)
            .fold(0.0, f64::max),
    );
    let px = |x: f64| L + x / xmax * (W - L - R);
    let py = |y: f64| H - B - y / ymax * (H - T - B);
    let mut o = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{L}" y="25" font-size="15">chat-bench {}: latency by percentile</text>
<text x="{L}" y="42" fill="#555">{}</text>
"##,
        r.scenario,
        xml(&r.summary)
    );
    for i in 0..=xmax as u32 {
        let x = px(f64::from(i));
        let label = match i {
            0 => "0%".to_string(),
            _ => format!("{}%", 100.0 - 100.0 / 10f64.powi(i as i32)),
        };
        o += &format!(
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>
"##,
            H - B,
            H - B + 18.0
        );
    }
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let y = py(v);
        o += &format!(
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v} ms</text>
"##,
            W - R,
            L - 6.0,
            y + 4.0
        );
    }
    o += &format!(
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>
"#,
        (L + W - R) / 2.0,
        H - 15.0
    );
    for (k, (name, h)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let top = (h.count() as f64).log10().clamp(1.0, xmax);
        let mut pts = String::new();
        let steps = (top * 50.0) as u32;
        for i in 0..=steps {
            let x = top * f64::from(i) / f64::from(steps);
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            pts += &format!("{:.1},{:.1} ", px(x), py(h.pct(p) as f64 / 1000.0));
        }
        pts += &format!("{:.1},{:.1}", px(top), py(h.0.max() as f64 / 1000.0));
        o += &format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>
<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{name} (p99 {})</text>
"#,
            W - R + 15.0,
            T + 20.0 * k as f64 + 4.0,
            W - R + 35.0,
            T + 20.0 * k as f64 + 10.0,
            ms(h.pct(99.0))
        );
    }
    o += "</svg>\n";
    o
}

/// What `--plot` writes: the percentile curves, and for a soak the interval series
/// under them in the same file.
pub fn plot(r: &Report) -> String {
    match series(r) {
        None => svg(r),
        Some(sr) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"1000\">\n{}{}</svg>\n",
            svg(r),
            series_svg(r, &sr).replacen("<svg ", "<svg y=\"500\" ", 1)
        ),
    }
}

/// p99 latency (left axis) and server RSS (right axis) per interval, over time.
pub fn series_svg(r: &Report, sr: &Series) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 500.0;
    const L: f64 = 80.0;
    const R: f64 = 250.0;
    const T: f64 = 50.0;
    const B: f64 = 60.0;
    let xmax = nice_ceil(sr.rows.last().map_or(1.0, |x| x.t_end_s));
    let p99max = nice_ceil(
        sr.rows
            .iter()
            .map(|x| x.p99_us as f64 / 1000.0)
            .fold(0.0, f64::max),
    );
    let rss: Vec<(f64, f64)> = sr
        .rows
        .iter()
        .filter(|x| x.samples > 0)
        .map(|x| (x.t_end_s, x.server_rss_kb as f64 / 1024.0))
        .collect();
    let rssmax = nice_ceil(rss.iter().map(|x| x.1).fold(0.0, f64::max));
    let px = |x: f64| L + x / xmax * (W - L - R);
    let py = |y: f64, max: f64| H - B - y / max * (H - T - B);
    let mut o = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{L}" y="25" font-size="15">chat-bench {}: p99 latency and server RSS per {} s interval</text>
<text x="{L}" y="42" fill="#555">{}</text>
"##,
        r.scenario,
        sr.interval_secs,
        xml(&format!(
            "growth after warm-up: rss {}, descriptors {} (limit {}%)",
            sr.rss_growth_pct
                .map_or("not measured".into(), |g| format!("{g:+.1}%")),
            sr.fd_growth_pct
                .map_or("not measured".into(), |g| format!("{g:+.1}%")),
            sr.max_growth_pct
        ))
    );
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let x = px(xmax * f);
        let y = py(p99max * f, p99max);
        o += &format!(
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{} s</text>
<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#1f77b4">{} ms</text><text x="{}" y="{:.1}" fill="#d62728">{} MB</text>
"##,
            H - B,
            H - B + 18.0,
            xmax * f,
            W - R,
            L - 6.0,
            y + 4.0,
            p99max * f,
            W - R + 6.0,
            y + 4.0,
            rssmax * f
        );
    }
    o += &format!(
        r#"<text x="{}" y="{}" text-anchor="middle">time since the start</text>
"#,
        (L + W - R) / 2.0,
        H - 15.0
    );
    let line = |pts: &[(f64, f64)], max: f64, color: &str| {
        let p: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y, max)))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>
"#,
            p.join(" ")
        )
    };
    let p99: Vec<(f64, f64)> = sr
        .rows
        .iter()
        .map(|x| (x.t_end_s, x.p99_us as f64 / 1000.0))
        .collect();
    o += &line(&p99, p99max, "#1f77b4");
    o += &line(&rss, rssmax, "#d62728");
    if let Some(b) = sr.base {
        let x = px(sr.rows[b].t_end_s - sr.interval_secs);
        o += &format!(
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#999" stroke-dasharray="4 4"/><text x="{:.1}" y="{}" fill="#555">warm-up end</text>
"##,
            H - B,
            x + 4.0,
            T + 12.0
        );
    }
    for (k, (name, color)) in [
        ("p99 latency (ms)", "#1f77b4"),
        ("server RSS (MB)", "#d62728"),
    ]
    .into_iter()
    .enumerate()
    {
        o += &format!(
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{name}</text>
"#,
            W - R + 60.0,
            T + 20.0 * k as f64 + 4.0,
            W - R + 80.0,
            T + 20.0 * k as f64 + 10.0
        );
    }
    o += "</svg>\n";
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis() {
        assert_eq!(nice_ceil(3.2), 5.0);
        assert_eq!(nice_ceil(0.7), 1.0);
        assert_eq!(nice_ceil(120.0), 200.0);
    }
}
