//! The evaluation report's figures, as SVG (plotters): PR and ROC curves against the champion,
//! and the score histogram by class.

use crate::eval::Session;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (560, 420);

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A white chart with `title` and labelled axes, x over 0..1 and y over 0..`y_max`.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    (x_label, y_label): (&str, &str),
    y_max: f64,
) -> anyhow::Result<Chart<'a, 'b>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..1f64, 0f64..y_max)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    Ok(chart)
}

/// Writes a line chart of `series` (name, points) with the given axis labels.
pub fn curves(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(&root, title, (x_label, y_label), 1.02)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Writes the share of each class's sessions per score bin (20 bins), so both classes show
/// whatever the imbalance.
pub fn score_histogram(path: &Path, title: &str, sessions: &[Session]) -> anyhow::Result<()> {
    const BINS: usize = 20;
    let shares = |fraud: bool| {
        let mut h = [0f64; BINS];
        let n = sessions.iter().filter(|s| s.fraud == fraud).count().max(1) as f64;
        for s in sessions.iter().filter(|s| s.fraud == fraud) {
            h[((s.score * BINS as f64) as usize).min(BINS - 1)] += 1.0 / n;
        }
        h
    };
    let (legit, fraud) = (shares(false), shares(true));
    let top = legit.iter().chain(&fraud).copied().fold(0.0, f64::max).max(0.01) * 1.05;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(&root, title, ("session score", "share of the class's sessions"), top)?;
    let w = 1.0 / BINS as f64;
    for (name, h, color, offset) in
        [("legitimate", legit, BLUE.mix(0.6), 0.0), ("fraudulent", fraud, RED.mix(0.6), w / 2.0)]
    {
        chart
            .draw_series(h.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 * w + offset;
                Rectangle::new([(x0, 0.0), (x0 + w / 2.0, *v)], color.filled())
            }))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_are_svg_with_their_titles_and_legends() {
        let dir = tempfile::tempdir().unwrap();
        let pr = dir.path().join("pr.svg");
        curves(&pr, "Precision–recall", ("recall", "precision"), &[("candidate", vec![(0.0, 1.0), (1.0, 0.1)])])
            .unwrap();
        let text = std::fs::read_to_string(&pr).unwrap();
        assert!(text.starts_with("<svg") && text.contains("candidate") && text.contains("recall"), "{text}");
        let h = dir.path().join("h.svg");
        let s = |score, fraud| Session { id: 0, score, fraud, kind: None, transfers: vec![] };
        score_histogram(&h, "Scores", &[s(0.1, false), s(0.9, true)]).unwrap();
        let text = std::fs::read_to_string(&h).unwrap();
        assert!(text.contains("fraudulent") && text.matches("<rect").count() >= 4, "{text}");
    }
}
